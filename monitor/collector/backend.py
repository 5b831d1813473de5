"""Database work for the async collector: a few threads, each with its own store and registry."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from monitor.collector.database import DatabaseUrl, connect
from monitor.collector.registry import Registry

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database did not answer or dropped the connection; the client should retry."""


def is_connection_failure(error: BaseException) -> bool:
    """Errors that mean "the database is not reachable now", not "this request is wrong"."""
    from monitor.store.base import StoreError

    if isinstance(error, StoreError):
        return "cannot connect" in str(error)
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error) or "unable to open" in str(error)
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def open_store(url: DatabaseUrl) -> Any:
    """The measurement store behind a collector URL (same Store protocol for both backends).

    No spool: the collector is where measurements end up, it uploads nowhere.
    """
    from monitor.store import open_store as open_any_store

    target = url.target if url.dialect == "postgres" else f"sqlite:///{url.target}"
    return open_any_store(target, spool=False, migrate=False)


class DatabaseThreads:
    """Runs blocking store calls off the event loop; each thread keeps its own connections.

    SQLite gets one thread (one writer, as sqlite-utils wants); PostgreSQL a few, because the
    server does the concurrent work and a batch insert mostly waits on its commit.
    """

    def __init__(self, url: DatabaseUrl, threads: int | None = None) -> None:
        self.url = url
        count = threads if threads is not None else (4 if url.dialect == "postgres" else 1)
        self.executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="collector-db")
        self._local = threading.local()
        self._opened: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()

    def _resources(self) -> tuple[Any, Registry]:
        resources = getattr(self._local, "resources", None)
        if resources is None:
            store = open_store(self.url)
            connection = connect(self.url)
            resources = (store, Registry(connection, self.url.dialect))
            self._local.resources = resources
            with self._lock:
                self._opened.append((store, connection))
        return resources

    def migrate(self) -> None:
        """Create or upgrade every table; called once at start-up, before serving."""
        store = open_store(self.url)
        store.migrate()
        connection = connect(self.url)
        try:
            Registry(connection, self.url.dialect).migrate()
        finally:
            connection.close()
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def _run_here(self, work: Callable[[Any, Registry], T]) -> T:
        try:
            return work(*self._resources())
        except Exception as error:
            if not is_connection_failure(error):
                raise
            # The server restarted or dropped us: forget this thread's connections so the next
            # request connects afresh, and tell the client to retry.
            self._discard_resources()
            raise DatabaseUnavailable(type(error).__name__) from error

    def _discard_resources(self) -> None:
        resources = getattr(self._local, "resources", None)
        self._local.resources = None
        if resources is None:
            return
        store, registry = resources
        with self._lock:
            self._opened = [pair for pair in self._opened if pair[0] is not store]
        for closing in (registry.connection.close, getattr(store, "close", None)):
            try:
                if closing is not None:
                    closing()
            except Exception:  # already broken; closing is best effort
                pass

    async def run(self, work: Callable[[Any, Registry], T]) -> T:
        """Run `work(store, registry)` on a database thread; DatabaseUnavailable when the
        database cannot be reached (the request is then safe to retry)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._run_here, work)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        with self._lock:
            for store, connection in self._opened:
                connection.close()
                close = getattr(store, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # a store bound to its thread; the process ends anyway
                        pass
            self._opened.clear()
