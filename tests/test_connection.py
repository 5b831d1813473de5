"""probes.connection against real loopback TLS servers: what goes on the wire, and when."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.certificates import certificate_pem, issue_leaf, key_pem, make_lab_root
from probes.connection import Connection, open_connection

LOOPBACK = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    directory: Path = tmp_path_factory.mktemp("pki")
    root = make_lab_root()
    leaf, key = issue_leaf(root, "site.test")
    (directory / "leaf.pem").write_bytes(certificate_pem(leaf))
    (directory / "key.pem").write_bytes(key_pem(key))
    (directory / "ca.pem").write_bytes(certificate_pem(root.certificate))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "leaf.pem", directory / "key.pem")
    client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    return server, client


class Site:
    """A TLS server that answers each request with a fixed page and records what it saw."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.handshakes_completed = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes_completed += 1  # start_server's TLS calls us only after the handshake
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # At once: asyncio's TLS close waits up to 30 s for the client's close_notify.
            writer.transport.abort()


@pytest.fixture
async def site(pki) -> AsyncIterator[tuple[Site, int]]:
    state = Site()
    server = await asyncio.start_server(state.handle, LOOPBACK, 0, ssl=pki[0])
    try:
        yield state, server.sockets[0].getsockname()[1]
    finally:
        server.close()


class _CountingTransport:
    """The connection's transport, with the size of each write noted (uvloop's transports do
    not let a test replace their write method, so the connection is handed this in front)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.sizes: list[int] = []

    def write(self, data: bytes) -> None:
        self.sizes.append(len(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


def _count_writes(connection: Connection) -> list[int]:
    transport = connection._transport
    assert transport is not None
    counting = _CountingTransport(transport)
    connection._transport = counting  # type: ignore[assignment]
    return counting.sizes


async def _read_all(connection: Connection) -> bytes:
    received = b""
    while data := await connection.read(65536):
        received += data
    return received


async def test_the_finished_message_leaves_with_the_request_behind_it(site, pki) -> None:
    state, port = site
    connection = await open_connection(LOOPBACK, port, limit=65536)
    writes = _count_writes(connection)
    await connection.start_tls(pki[1], server_hostname="site.test")
    connection.write(REQUEST)
    assert (await _read_all(connection)).endswith(b"\r\n\r\nhi")
    # ClientHello, then Finished and the request in one write (not three writes).
    assert len(writes) == 2
    assert state.requests == [REQUEST]
    assert connection.ssl_object is not None and connection.ssl_object.version() == "TLSv1.3"


async def test_a_connection_closed_right_after_the_handshake_still_finishes_it(site, pki) -> None:
    state, port = site
    connection = await open_connection(LOOPBACK, port, limit=65536)
    await connection.start_tls(pki[1], server_hostname="site.test")
    connection.abort()  # an SNI retry: the handshake was all it wanted
    await asyncio.sleep(0.2)
    assert state.handshakes_completed == 1


async def test_the_finished_message_goes_out_on_the_next_turn_without_a_request(site, pki) -> None:
    state, port = site
    connection = await open_connection(LOOPBACK, port, limit=65536)
    await connection.start_tls(pki[1], server_hostname="site.test")
    await asyncio.sleep(0.2)  # the helper's endpoint check: the page comes later, if at all
    assert state.handshakes_completed == 1
    connection.write(REQUEST)
    assert (await _read_all(connection)).endswith(b"hi")
    connection.abort()


async def test_an_untrusted_certificate_fails_the_handshake_as_openssl_says(site) -> None:
    _, port = site
    connection = await open_connection(LOOPBACK, port, limit=65536)
    with pytest.raises(ssl.SSLCertVerificationError):
        await connection.start_tls(ssl.create_default_context(), server_hostname="site.test")
    assert connection.is_closing()


async def test_a_peer_that_closes_mid_handshake_is_a_bare_connection_reset() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()  # FIN after the ClientHello's first byte: no ServerHello

    server = await asyncio.start_server(hang_up, LOOPBACK, 0)
    try:
        connection = await open_connection(LOOPBACK, server.sockets[0].getsockname()[1], limit=65536)
        with pytest.raises(ConnectionResetError) as raised:
            await connection.start_tls(ssl.create_default_context(), server_hostname="site.test")
        # No errno: probes/errors.py reads this as eof_error, as it did asyncio's.
        assert raised.value.errno is None
    finally:
        server.close()


async def test_reading_is_paused_past_twice_the_limit_and_resumed_as_it_drains() -> None:
    payload = b"x" * (1 << 20)

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(flood, LOOPBACK, 0)
    try:
        connection = await open_connection(LOOPBACK, server.sockets[0].getsockname()[1], limit=16384)
        await asyncio.sleep(0.3)
        # Not the whole megabyte: the socket stopped being read once the buffer passed 2 x limit.
        assert len(connection._buffer) <= 2 * 16384 + 256 * 1024 < len(payload)  # + one socket read
        assert await _read_all(connection) == payload
    finally:
        server.close()
