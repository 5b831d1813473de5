"""The dashboard's database thread (one store, never on the event loop) and operator token check."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from monitor.store import Store
from monitor.store.queries import ReadDatabase
from monitor.store.threads import StoreThreads

T = TypeVar("T")


class DashboardDatabase:
    """Runs read queries on one thread that owns its own store (monitor.store.threads)."""

    def __init__(self, store_factory: Callable[[], Store]) -> None:
        self._threads = StoreThreads(store_factory, threads=1, name="dashboard-db")

    async def run(self, work: Callable[[ReadDatabase, Store], T]) -> T:
        return await self._threads.run(lambda store: work(ReadDatabase(store), store))

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.close)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_operator(request: web.Request, operator_token: str | None) -> None:
    """Raises 403 when actions are disabled (no token set), 401 without the right token."""
    if not operator_token:
        raise web.HTTPForbidden(text="actions are disabled: set [reports] operator_token")
    given = bearer_token(request)
    # compare_digest: the time taken does not tell how much of a guess was right.
    if given is None or not hmac.compare_digest(given.encode(), operator_token.encode()):
        raise web.HTTPUnauthorized(text="operator token required (Authorization: Bearer ...)",
                                   headers={"WWW-Authenticate": "Bearer"})
