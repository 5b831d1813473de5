"""Guards every blockmon HTTP server shares: hostile paths and queries refused, private logs."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Seconds an idle keep-alive connection stays open between two requests.
KEEPALIVE_SECONDS = 15.0
# Seconds a request body may take to arrive once its headers have (a trickled body: 408).
BODY_TIMEOUT_SECONDS = 30.0
# Open connections one client address may hold on one server; more are answered 503 and closed.
# Far above what a probe (a pool of a few), a browser (6) or a NAT of probes needs, far below
# the open-file limit (1,024 by default) one client could otherwise fill for everyone.
MAX_CONNECTIONS_PER_CLIENT = 256
_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 41\r\n\r\n"
             b"too many open connections from your side\n")


def hostile_text(text: str) -> str | None:
    """Why a path or query string cannot be served (a NUL or other control character, an
    unpaired surrogate from bytes that are not UTF-8), or None."""
    for character in text:
        code = ord(character)
        if code < 0x20 or code == 0x7F:
            return f"control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return "bytes that are not UTF-8"
    return None


@web.middleware
async def refuse_hostile_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 with one JSON line before any route sees a path or query it could choke on (a NUL
    reaching SQLite, PostgreSQL or a template gave 500s)."""
    for where, text in (("path", request.path), ("query string", request.query_string)):
        problem = hostile_text(text)
        if problem is not None:
            return web.json_response({"error": f"{where} holds {problem}", "field": where},
                                     status=400)
    return await handler(request)


class PrivateAccessLogger(AbstractAccessLogger):
    """One line per request: method, path without its query string (a token sent there must
    not reach the log), status, size, seconds; the client address only when the format asks
    for it with %a."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        who = f"{request.remote} " if "%a" in self.log_format else ""
        path = request.rel_url.path.encode("unicode_escape").decode("ascii")
        self.logger.info('%s"%s %s" %s %s %.3fs', who, request.method, path, response.status,
                         response.body_length, time)


class _HideClientAddress(logging.Filter):
    """aiohttp names the client in "Error handling request from <address>" (a malformed
    request): the address is replaced unless client addresses are logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Error handling request from"):
            record.args = ("<client>",)
        return True


def server_logger(log_client_addresses: bool) -> logging.Logger:
    name = "blockmon.http" if log_client_addresses else "blockmon.http.private"
    logger = logging.getLogger(name)
    if not log_client_addresses and not any(isinstance(item, _HideClientAddress)
                                            for item in logger.filters):
        logger.addFilter(_HideClientAddress())
    return logger


def runner_options(access_log_format: str | None) -> dict[str, Any]:
    """Keyword arguments for web.AppRunner: private access log (or none), private error log,
    keep-alive limit."""
    private = access_log_format is None or "%a" not in access_log_format
    options: dict[str, Any] = {"logger": server_logger(not private),
                               "keepalive_timeout": KEEPALIVE_SECONDS}
    if access_log_format is None:
        options["access_log"] = None
    else:
        options.update(access_log_class=PrivateAccessLogger,
                       access_log_format=access_log_format)
    return options


def guard(app: web.Application) -> None:
    """Puts refuse_hostile_requests first on an app not yet started (idempotent)."""
    if refuse_hostile_requests not in app.middlewares:
        app.middlewares.insert(0, refuse_hostile_requests)


class _CountedConnection(asyncio.Protocol):
    """One connection seen through the cap: forwarded to aiohttp's handler when admitted."""

    def __init__(self, inner: asyncio.Protocol, cap: PerClientConnectionCap) -> None:
        self.inner, self.cap = inner, cap
        self.address: str | None = None  # set once admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if self.cap.limit and self.cap.open[address] >= self.cap.limit:
            # uvloop's transports have write() without subclassing asyncio.WriteTransport.
            write = getattr(transport, "write", None)
            if write is not None:
                write(_TOO_MANY)
            transport.close()
            return
        self.address = address
        self.cap.open[address] += 1
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return
        self.cap.open[self.address] -= 1
        if self.cap.open[self.address] <= 0:
            del self.cap.open[self.address]
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.address is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.address is not None else None

    def pause_writing(self) -> None:
        if self.address is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.address is not None:
            self.inner.resume_writing()


class PerClientConnectionCap:
    """aiohttp's protocol factory (web.Server) behind a count of open connections per client
    address; everything else is the server's own (shutdown, connections)."""

    def __init__(self, server: Any, limit: int) -> None:
        self._server = server
        self.limit = limit  # 0: no cap
        self.open: Counter[str] = Counter()

    def __call__(self) -> asyncio.Protocol:
        return _CountedConnection(self._server(), self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def cap_connections_per_client(runner: web.AppRunner, limit: int) -> PerClientConnectionCap:
    """Puts the cap in front of a set-up runner's server, before any site starts."""
    # aiohttp has no hook for a connection before its first request: the runner's protocol
    # factory (what every TCPSite listens with) is wrapped in place.
    server = runner.server
    if isinstance(server, PerClientConnectionCap):
        server.limit = limit
        return server
    cap = PerClientConnectionCap(server, limit)
    runner._server = cap  # type: ignore[assignment]  # the one place aiohttp reads it from
    return cap
