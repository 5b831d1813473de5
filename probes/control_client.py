"""The probe's HTTP client for its control helper: keep-alive POSTs of JSON, nothing else.

aiohttp's ClientSession did this at about a tenth of a measurement's CPU (its request and
response machinery, tracing, cookies, multidicts); the control step needs one method to one
server. Connections are probes.connection's and the HTTP/1.1 exchange is probes/exchange.py's
(the same as the helper's page fetch), so errors classify as in every other step.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from probes.connection import Connection, open_connection
from probes.endpoints import DEFAULT_PORTS, request_target
from probes.exchange import Exchange, exchange

# Bytes read per call from the helper's connection; an answer is a few KiB.
_CONNECTION_LIMIT = 256 * 1024

AnswerHook = Callable[[Mapping[str, str]], None]


@dataclass(frozen=True, slots=True)
class ControlReply:
    status: int
    # Header names in lower case, the first value of each.
    headers: Mapping[str, str]
    body: bytes
    oversized: bool


@functools.lru_cache(maxsize=64)
def _route(url: str) -> tuple[tuple[str, str, int], str, str]:
    """The helper URL's origin (scheme, host, port), Host header and request target.

    A probe posts to one or two helper URLs: parsing each once spares the urlsplit properties,
    which parse the netloc again at every access.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    origin = (scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[scheme])
    return origin, parts.netloc.rpartition("@")[2], request_target(url)


@functools.cache
def _helper_tls_context() -> ssl.SSLContext:
    # The system's trust store (SSL_CERT_FILE honoured), as aiohttp's default was.
    return ssl.create_default_context()


class ControlClient:
    """POSTs to control helpers over kept-alive connections, at most `max_idle` kept per helper.

        client = ControlClient(on_answer=watch.observe_headers)
        reply = await client.post(url, body, headers, timeout=30, limit=4 << 20)
        await client.close()
    """

    def __init__(self, *, max_idle: int = 100, on_answer: AnswerHook | None = None) -> None:
        self.max_idle = max_idle
        self.on_answer = on_answer
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self.closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, limit: int
    ) -> ControlReply:
        """One POST within `timeout` seconds; network and protocol errors propagate.

        A kept-alive connection the helper closed meanwhile is retried once on a new one
        (a control request only asks, so sending it twice is harmless).
        """
        origin, host_header, target = _route(url)
        scheme, host, port = origin
        lines = [("Host", host_header), *headers.items(), ("Content-Length", str(len(body)))]
        async with asyncio.timeout(timeout):
            connection = self._take(origin)
            if connection is not None:
                try:
                    return self._finish(origin, connection, await exchange(
                        connection, "POST", target, lines, limit, body=body))
                except (OSError, EOFError):
                    connection.abort()
            connection = await self._connect(scheme, host, port)
            try:
                return self._finish(origin, connection, await exchange(
                    connection, "POST", target, lines, limit, body=body))
            except BaseException:
                connection.abort()
                raise

    async def close(self) -> None:
        self.closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.abort()
        self._idle.clear()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _finish(self, origin: tuple[str, str, int], connection: Connection, reply: Exchange) -> ControlReply:
        headers: dict[str, str] = {}
        for name, value in reply.headers:
            headers.setdefault(name.lower(), value)
        if reply.reusable and not self.closed and len(self._idle.get(origin, ())) < self.max_idle:
            self._idle.setdefault(origin, []).append(connection)
        else:
            connection.abort()
        if self.on_answer is not None:
            self.on_answer(headers)
        return ControlReply(reply.status, headers, reply.body, reply.body_is_truncated)

    def _take(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.is_closing() and not connection.at_eof():
                return connection
            connection.abort()
        return None

    async def _connect(self, scheme: str, host: str, port: int) -> Connection:
        connection = await open_connection(host, port, limit=_CONNECTION_LIMIT)
        if scheme == "https":
            try:
                await connection.start_tls(_helper_tls_context(), server_hostname=host)
            except BaseException:
                connection.abort()
                raise
        return connection
