"""A small TTL cache of results, or of computations still in flight, shared by concurrent askers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class TTLCache:
    """Results (or in-flight computations) by key for `ttl` seconds; concurrent askers share one."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            result: T = await asyncio.shield(cached[1])
            return result
        if len(self._entries) >= self.size:
            self._evict(now)
        future: asyncio.Future[T] = asyncio.ensure_future(compute())
        self._entries[key] = (now, future)
        return await asyncio.shield(future)

    def _evict(self, now: float) -> None:
        for key in [k for k, (at, _) in self._entries.items() if now - at >= self.ttl]:
            del self._entries[key]
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
