"""Database work for the async collector: a few threads, each with one store (one connection)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from monitor.collector.registry import Registry
from monitor.collector.schema import COLLECTOR_DATABASE
from monitor.store import Store
from monitor.store import open_store as open_any_store
from monitor.store.database import DatabaseUrl
from monitor.store.threads import DatabaseUnavailable, StoreThreads

__all__ = ["DatabaseThreads", "DatabaseUnavailable", "open_store"]

T = TypeVar("T")


def open_store(url: DatabaseUrl, *, migrate: bool = False) -> Store:
    """The store behind a collector URL, holding the collector database's tables.

    No spool: the collector is where measurements end up, it uploads nowhere.
    """
    return open_any_store(url.store_url(), spool=False, migrate=migrate,
                          migration_sets=COLLECTOR_DATABASE)


class DatabaseThreads:
    """Runs the collector's blocking database work off the event loop (monitor.store.threads).

    SQLite gets one thread (one writer, as sqlite-utils wants); PostgreSQL a few, because the
    server does the concurrent work and a batch insert mostly waits on its commit. Each thread's
    store and registry share that store's one connection.
    """

    def __init__(self, url: DatabaseUrl, threads: int | None = None) -> None:
        self.url = url
        count = threads if threads is not None else (4 if url.dialect == "postgres" else 1)
        self._threads = StoreThreads(lambda: open_store(url), threads=count,
                                     name="collector-db", reconnect=True)

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self._threads.executor

    def migrate(self) -> None:
        """Create or upgrade every table; called once at start-up, before serving."""
        open_store(self.url, migrate=True).close()

    async def run(self, work: Callable[[Store, Registry], T]) -> T:
        """Run `work(store, registry)` on a database thread; DatabaseUnavailable when the
        database cannot be reached (the request is then safe to retry)."""
        return await self._threads.run(lambda store: work(store, Registry(store.database)))

    def close(self) -> None:
        self._threads.close()
