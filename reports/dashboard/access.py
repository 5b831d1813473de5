"""The dashboard's database thread (one store, never on the event loop) and operator token check."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from monitor.store.queries import ReadDatabase

T = TypeVar("T")


class DashboardDatabase:
    """Runs read queries on one thread that owns its own store (SQLite wants one thread)."""

    def __init__(self, store_factory: Callable[[], Any]) -> None:
        self._store_factory = store_factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-db")
        self._store: Any = None

    def _open(self) -> tuple[ReadDatabase, Any]:
        if self._store is None:
            self._store = self._store_factory()
        return ReadDatabase(self._store), self._store

    async def run(self, work: Callable[[ReadDatabase, Any], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(*self._open()))

    async def close(self) -> None:
        def close_store() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close_store)
        self._executor.shutdown(wait=False)


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
