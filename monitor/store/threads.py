"""The one owner of database threads: async callers hand it a function, a thread runs it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from monitor.store.base import Store
from monitor.store.database import is_connection_failure

S = TypeVar("S", bound=Store)
T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database did not answer or dropped the connection; the client should retry."""


class StoreThreads(Generic[S]):
    """Runs blocking store work off the event loop, as datasette's Database does.

        threads = StoreThreads(lambda: open_store(url), threads=1, name="dashboard-db")
        states = await threads.run(lambda store: store.load_states())
        threads.close()   # waits for queued work, then closes every store

    Each thread opens its own store (`open_store`, called on that thread at its first work)
    and keeps it. One thread for SQLite: it allows one writer, and that thread is it. A few
    for PostgreSQL, where the server does the concurrent work and each thread mostly waits.
    With `reconnect`, a connection failure closes that thread's store, so the next work opens
    a fresh one, and raises DatabaseUnavailable (the request is safe to retry).
    """

    def __init__(self, open_store: Callable[[], S], *, threads: int = 1, name: str = "store",
                 reconnect: bool = False) -> None:
        self._open_store = open_store
        self._reconnect = reconnect
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._local = threading.local()
        self._opened: list[S] = []
        self._lock = threading.Lock()
        self._closed = False

    def _store(self) -> S:
        store: S | None = getattr(self._local, "store", None)
        if store is None:
            store = self._open_store()
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def _run_here(self, work: Callable[[S], T]) -> T:
        try:
            return work(self._store())
        except Exception as error:
            if not self._reconnect or not is_connection_failure(error):
                raise
            self._discard_store()
            raise DatabaseUnavailable(type(error).__name__) from error

    def _discard_store(self) -> None:
        store: S | None = getattr(self._local, "store", None)
        self._local.store = None
        if store is None:
            return
        with self._lock:
            self._opened = [opened for opened in self._opened if opened is not store]
        try:
            store.close()
        except Exception:  # the connection is already broken; closing is best effort
            pass

    async def run(self, work: Callable[[S], T]) -> T:
        """work(store) on a database thread, with that thread's store; its result."""
        if self._closed:
            raise RuntimeError("the database threads are closed")
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self._run_here, work)

    def close(self) -> None:
        """Finishes the work already queued, then closes every store the threads opened."""
        self._closed = True
        self.executor.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()
