"""A small TTL cache of results, or of computations still in flight, shared by concurrent askers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class TTLCache:
    """Results (or in-flight computations) by key for `ttl` seconds, at most `size` of them;
    concurrent askers share one computation."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        # Kept in insertion order (a key asked again is moved to the end): the oldest come first.
        self._entries: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            if cached[1].done():
                done: T = cached[1].result()  # no shield (a future and callbacks) for a hit
                return done
            result: T = await asyncio.shield(cached[1])
            return result
        self._entries.pop(key, None)
        self._evict(now)
        future: asyncio.Future[T] = asyncio.ensure_future(compute())
        if self.size > 0 and self.ttl > 0:
            self._entries[key] = (now, future)
        return await asyncio.shield(future)

    def _evict(self, now: float) -> None:
        # The expired, then (when still full) the oldest: only the front is ever looked at.
        entries = self._entries
        while entries:
            key, (at, _) = next(iter(entries.items()))
            if now - at < self.ttl and len(entries) < self.size:
                return
            del entries[key]
