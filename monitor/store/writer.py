"""One writer thread owns the store, so async code never blocks its event loop on SQLite."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from monitor.store.base import Store
from monitor.store.threads import StoreThreads

P = ParamSpec("P")
T = TypeVar("T")


class StoreWriter:
    """Runs store calls one at a time on a single thread (SQLite allows one writer anyway).

        writer = StoreWriter(store)
        saved = await writer.call(store.save_measurement, measurement, target_id="azattyq")
        await writer.close()   # waits for queued calls, then closes the store
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._threads = StoreThreads(lambda: store, threads=1, name="store-writer")

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs function(*args, **kwargs) on the writer thread and returns its result."""
        bound = functools.partial(function, *args, **kwargs)
        return await self._threads.run(lambda _store: bound())

    async def close(self) -> None:
        """Finishes the calls already queued, closes the store, stops the thread."""
        await asyncio.to_thread(self._threads.close)
        # The thread opened no store of its own when no call ever ran; closing twice is harmless.
        self.store.close()

    async def __aenter__(self) -> StoreWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
