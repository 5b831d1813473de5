"""The SNI/Host middlebox in front of every lab web server: peek, decide, then reset, hold or serve."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from lab.policies import Protocol, decide_front_action, decide_shaping
from lab.shaping import Shaper
from lab.sniff import Sniffed, sniff_http_host, sniff_tls_server_name
from lab.state import LabState

# A client that sends nothing for this long is dropped (servers speak second in HTTP and TLS).
FIRST_BYTES_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 15.0
_RETRY_PAUSE = 0.005

ProtocolFactory = Callable[[], asyncio.BaseProtocol]  # e.g. an aiohttp web.Server


@dataclass(frozen=True)
class Backends:
    """Protocol factories and TLS contexts the front hands accepted sockets to."""

    site: ProtocolFactory
    doctored: ProtocolFactory
    blockpage: ProtocolFactory
    lab_tls: ssl.SSLContext
    rogue_tls: ssl.SSLContext


def listening_socket(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def reset_connection(sock: socket.socket) -> None:
    """Close with RST instead of FIN: SO_LINGER on with a zero timeout."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _wait_readable(sock: socket.socket, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), on_readable)
    try:
        # asyncio.timeout, not wait_for: no task per wait (Python 3.11), once or twice a connection.
        async with asyncio.timeout(timeout):
            await ready
    finally:
        loop.remove_reader(sock.fileno())


async def peek_hostname(sock: socket.socket, protocol: Protocol, timeout: float) -> Sniffed | None:
    """Peek (MSG_PEEK, nothing consumed) until the hostname can be read; None if the client left."""
    sniff = sniff_tls_server_name if protocol == "tls" else sniff_http_host
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            # The client's first bytes are often there already: look before waiting for them.
            data = sock.recv(65536, socket.MSG_PEEK)
        except BlockingIOError:
            remaining = deadline - asyncio.get_running_loop().time()
            await _wait_readable(sock, max(remaining, 0.0))
            continue
        if not data:
            return None
        sniffed = sniff(data)
        if sniffed.status != "incomplete":
            return sniffed
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("no complete hello in time")
        # Readable stays true while a partial hello waits in the buffer: pause, don't spin.
        await asyncio.sleep(_RETRY_PAUSE)


class Front:
    """Accept loops for every (address, port) of the sites and the blockpage server."""

    def __init__(self, state: LabState, backends: Backends, shaper: Shaper | None = None) -> None:
        self._state = state
        # Puts a shaped connection's socket in the lab's tc class (lab/shaping.py); None: off.
        self._shaper = shaper
        self._backends = backends
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[socket.socket] = set()

    def listen(self, address: str, port: int) -> None:
        self._listeners.append(listening_socket(address, port))

    def start(self) -> None:
        for listener in self._listeners:
            self._spawn(self._accept_loop(listener))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for listener in self._listeners:
            listener.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in list(self._held):
            sock.close()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        local_address, port = listener.getsockname()[:2]
        protocol: Protocol = "tls" if port == 443 else "http"
        while True:
            try:
                connection, peer = await loop.sock_accept(listener)
            except OSError:
                await asyncio.sleep(0.05)  # EMFILE and friends: back off rather than spin
                continue
            self._spawn(self._handle(connection, peer[0], local_address, protocol))

    async def _handle(self, sock: socket.socket, peer: str, local: str, protocol: Protocol) -> None:
        handed_over = False
        try:
            if local == self._state.plan.blockpage:
                await self._hand_over(
                    sock, self._backends.blockpage, protocol, self._backends.lab_tls
                )
                handed_over = True
                return
            try:
                sniffed = await peek_hostname(sock, protocol, FIRST_BYTES_TIMEOUT)
            except (TimeoutError, OSError):
                return
            if sniffed is None:
                return
            censored = peer == self._state.plan.censored_source
            policy = self._state.policy_for(sniffed.hostname)
            attempt = self._state.next_attempt(sniffed.hostname or "") if censored else 0
            action = decide_front_action(
                policy, protocol=protocol, from_censored_vantage=censored, attempt=attempt
            )
            vantage_shaped = self._state.vantage_shaped
            if (
                self._shaper is not None
                and decide_shaping(policy, from_censored_vantage=censored, vantage_shaped=vantage_shaped)
                and await self._shaper.ensure_installed()
            ):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, self._shaper.priority)
            if action == "reset":
                reset_connection(sock)
                return
            if action == "blackhole":
                handed_over = True
                await self._hold(sock)
                return
            factory = {"blockpage": self._backends.blockpage, "diff": self._backends.doctored}.get(
                action, self._backends.site
            )
            context = self._backends.rogue_tls if action == "mitm" else self._backends.lab_tls
            await self._hand_over(sock, factory, protocol, context)
            handed_over = True
        finally:
            if not handed_over:
                sock.close()

    async def _hand_over(
        self,
        sock: socket.socket,
        factory: ProtocolFactory,
        protocol: Protocol,
        context: ssl.SSLContext,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                factory,
                sock,
                ssl=context if protocol == "tls" else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if protocol == "tls" else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            sock.close()  # a failed handshake is the client's business, not the lab's

    async def _hold(self, sock: socket.socket) -> None:
        """Black-hole: read and discard whatever comes, answer nothing, until the client leaves."""
        loop = asyncio.get_running_loop()
        self._held.add(sock)
        try:
            while await loop.sock_recv(sock, 65536):
                pass
        except OSError:
            pass
        finally:
            self._held.discard(sock)
            sock.close()
