"""Open connections between two GETs: an endpoint check's, handed to the page fetch behind it, and
kept-alive ones, bounded in number and in idle time."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from probes.connection import Connection
from probes.tcp import close_connection

# (scheme, host, ip, port): a connection serves one origin at one address, as a browser's does.
ConnectionKey = tuple[str, str, str, int]

# A hand-over is taken by the page fetch waiting on the check, within milliseconds; one the page
# did not take (it used another address, or failed first) is closed after this long.
HANDOVER_SECONDS = 5.0


class IdleConnections:
    """Connections waiting for their next GET.

    Hand-overs (an endpoint check's connection, for the page fetch of the same request) are at
    most one per request in flight. Kept-alive connections (a page's, for the next page of the
    same origin) are at most `size`, the oldest closed first, none older than `idle_timeout`:
    each idle TLS connection holds its OpenSSL state (~28 KB measured), so the bound is what keeps a
    helper asked about thousands of distinct sites from holding one per site.
    """

    def __init__(self, size: int, idle_timeout: float) -> None:
        self.size = size
        self.idle_timeout = idle_timeout
        self._handed_over: dict[ConnectionKey, list[tuple[float, Connection]]] = {}
        # serial -> (key, parked at, connection), in the order parked: the oldest come first.
        self._idle: OrderedDict[int, tuple[ConnectionKey, float, Connection]] = OrderedDict()
        self._serials: dict[ConnectionKey, list[int]] = {}
        self._serial = 0
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._idle) + sum(len(entries) for entries in self._handed_over.values())

    def hand_over(self, key: ConnectionKey, connection: Connection) -> None:
        """Leave a checked endpoint's connection for the page fetch of the same request."""
        self._handed_over.setdefault(key, []).append((time.monotonic(), connection))

    def take(self, key: ConnectionKey) -> tuple[Connection, bool] | None:
        """A live connection for `key` and whether it was handed over (else kept alive), or None."""
        now = time.monotonic()
        handed = self._handed_over.get(key)
        while handed:
            _, connection = handed.pop()
            if not handed:
                del self._handed_over[key]
            if _is_open(connection):
                return connection, True
            _abort(connection)
        serials = self._serials.get(key)
        while serials:
            _, parked_at, connection = self._idle.pop(serials.pop())
            if not serials:
                del self._serials[key]
            if now - parked_at < self.idle_timeout and _is_open(connection):
                return connection, False
            _abort(connection)
        return None

    def keep_alive(self, key: ConnectionKey, connection: Connection) -> None:
        """Keep `connection` for the next GET to `key`; closed at once when keep-alive is off."""
        self.close_expired()
        if self.size <= 0 or self.idle_timeout <= 0 or not _is_open(connection):
            _abort(connection)
            return
        while len(self._idle) >= self.size:
            self._drop_oldest()
        self._serial += 1
        self._idle[self._serial] = (key, time.monotonic(), connection)
        self._serials.setdefault(key, []).append(self._serial)

    def close_expired(self) -> None:
        now = time.monotonic()
        while self._idle and now - next(iter(self._idle.values()))[1] >= self.idle_timeout:
            self._drop_oldest()
        for key in [k for k, entries in self._handed_over.items() if now - entries[0][0] >= HANDOVER_SECONDS]:
            for _, connection in self._handed_over.pop(key):
                _abort(connection)

    def _drop_oldest(self) -> None:
        serial, (key, _, connection) = self._idle.popitem(last=False)
        serials = self._serials[key]
        serials.remove(serial)
        if not serials:
            del self._serials[key]
        _abort(connection)

    def start(self) -> None:
        """Close expired connections every second even when no request comes to do it."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.close_expired()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._serials.clear()
        while self._idle:
            await close_connection(self._idle.popitem()[1][2])
        for entries in self._handed_over.values():
            for _, connection in entries:
                await close_connection(connection)
        self._handed_over.clear()


def _is_open(connection: Connection) -> bool:
    # A peer that closed while the connection waited has left EOF behind.
    return not connection.is_closing() and not connection.at_eof()


def _abort(connection: Connection) -> None:
    connection.abort()
