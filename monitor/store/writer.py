"""One writer thread owns the store, so async code never blocks its event loop on SQLite."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from monitor.store.base import Store

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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._closed = False

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs function(*args, **kwargs) on the writer thread and returns its result."""
        if self._closed:
            raise RuntimeError("StoreWriter is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs))

    async def close(self) -> None:
        """Finishes the calls already queued, closes the store on its own thread, stops."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.store.close)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def __aenter__(self) -> StoreWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
