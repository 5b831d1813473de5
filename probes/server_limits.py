"""Guards every blockmon HTTP server shares: hostile paths and queries refused, private logs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Seconds an idle keep-alive connection stays open between two requests.
KEEPALIVE_SECONDS = 15.0


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
