"""One TCP connection as the probe's steps use it: read, write, and an upgrade to TLS in place.

asyncio's streams put three Python objects and asyncio's own TLS layer between a socket and a
step (StreamReader, StreamReaderProtocol, SSLProtocol with its app transport). A measurement
needs none of their generality: one protocol object with OpenSSL's memory BIOs does the same
work with far fewer calls per byte (docs/benchmarks.md, "Measurement engine"). Errors are the
ones asyncio's streams raised, so probes/errors.py classifies them as before.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

# Decrypted bytes taken from OpenSSL per call; a TLS record holds at most 16 KiB.
_TLS_READ_SIZE = 64 * 1024


class Connection(asyncio.Protocol):
    """A connected socket's bytes, plain or (after start_tls) decrypted, for one reader."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        # TLS, once start_tls began: OpenSSL reads `_incoming`, writes `_outgoing`.
        self._tls: ssl.SSLObject | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._holding_finished = False

    # asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._incoming is None:
            self._buffer += data
        else:
            self._incoming.write(data)
            self._pump_tls()
        if len(self._buffer) > 2 * self._limit and self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        if self._handshake is not None:
            # A peer's FIN mid-handshake: asyncio's TLS layer raised a bare ConnectionResetError.
            self._fail_handshake(ConnectionResetError())
        self._eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and self._error is None:
            self._error = exc
        else:
            self._eof = True
        if self._handshake is not None:
            self._fail_handshake(exc if exc is not None else ConnectionResetError("Connection lost"))
        self._wake_reader()
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    # What the steps call ---------------------------------------------------------------------

    async def read(self, n: int) -> bytes:
        """Up to n bytes as they arrive; b"" at the end; the connection's error if it failed.

        As asyncio's StreamReader: an error is raised even if bytes are still buffered.
        """
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        if self._error is not None:
            raise self._error
        if n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
        if self._reading_paused and len(self._buffer) <= self._limit and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return  # as asyncio's transports do: the next read or drain reports the loss
        if self._tls is None:
            self._transport.write(data)
            return
        self._tls.write(data)
        self._holding_finished = False
        self._flush_tls()

    async def drain(self) -> None:
        if self._error is not None:
            raise self._error
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if self._writing_paused:
            self._drainer = asyncio.get_running_loop().create_future()
            try:
                await self._drainer
            finally:
                self._drainer = None
            if self._lost:
                raise ConnectionResetError("Connection lost")

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Handshake over this connection; raises what OpenSSL or the connection raised."""
        if self._transport is None or self._lost:
            raise ConnectionResetError("Connection lost")
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        if self._buffer:  # bytes the server sent before our ClientHello belong to TLS now
            self._incoming.write(bytes(self._buffer))
            self._buffer.clear()
        self._handshake = asyncio.get_running_loop().create_future()
        waiter = self._handshake
        self._pump_tls()
        await waiter

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._tls

    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify, no FIN wait)."""
        if self._holding_finished:
            self._release_finished()  # a handshake completes on the wire, as before
        if self._transport is not None:
            self._transport.abort()

    # TLS ------------------------------------------------------------------------------------

    def _pump_tls(self) -> None:
        tls = self._tls
        assert tls is not None
        if self._handshake is not None:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                return
            except ssl.SSLError as error:
                self._flush_tls()  # the alert, if OpenSSL wrote one
                self._fail_handshake(error)
                return
            # The client's Finished waits for the request written behind it (at the latest until
            # the loop's next turn): one packet instead of two, for us and for the server.
            waiter, self._handshake = self._handshake, None
            if not waiter.done():
                waiter.set_result(None)  # schedules the step first, then the release below
            self._holding_finished = True
            asyncio.get_running_loop().call_soon(self._release_finished)
        while True:
            try:
                chunk = tls.read(_TLS_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True  # the peer's close_notify
                break
            except ssl.SSLError as error:
                self._error = error
                break
            if not chunk:
                break  # as asyncio's TLS layer: nothing more decrypted for now (not an EOF)
            self._buffer += chunk
        self._flush_tls()

    def _release_finished(self) -> None:
        self._holding_finished = False
        self._flush_tls()

    def _flush_tls(self) -> None:
        assert self._outgoing is not None
        if self._holding_finished:
            return
        if self._outgoing.pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._outgoing.read())

    def _fail_handshake(self, error: BaseException) -> None:
        waiter, self._handshake = self._handshake, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)


async def open_connection(
    ip: str, port: int, *, limit: int, local_addr: tuple[str, int] | None = None
) -> Connection:
    """Connect to ip:port; raises OSError (refused, unreachable, ...) as asyncio does.

    The socket is made here rather than by loop.create_connection(host, port), which runs the
    address and the local address through its resolver checks and candidate loops first: the
    address is always a literal here, so those are pure cost (~10% of the connect's CPU).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if local_addr is not None:
            _bind(sock, local_addr)
        await loop.sock_connect(sock, (ip, port))
        _, connection = await loop.create_connection(lambda: Connection(limit), sock=sock)
    except BaseException:
        sock.close()
        raise
    return connection


def _bind(sock: socket.socket, local_addr: tuple[str, int]) -> None:
    family = socket.AF_INET6 if ":" in local_addr[0] else socket.AF_INET
    if family != sock.family:
        # As loop.create_connection says when no local address has the target's family.
        raise OSError(f"no matching local address with family={sock.family!r} found")
    try:
        sock.bind(local_addr)
    except OSError as error:
        # The message loop.create_connection gives a failed bind, for the same failure string.
        raise OSError(error.errno, f"error while attempting to bind on address {local_addr!r}: "
                                   f"{error.strerror.lower() if error.strerror else error}") from None
