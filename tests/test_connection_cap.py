"""Per-client connection cap (every server) and the helper's body timeout, over real sockets:
a real `blockmon helper` process, and the helper's app on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from aiohttp import web

from probes.server_limits import runner_options
from tests.fixtures.helper import start_helper_process, stop_helper_process

CAP = 20


@pytest.fixture
def capped_helper() -> Iterator[int]:
    process, url = start_helper_process("--max-connections-per-client", str(CAP))
    try:
        yield int(url.rstrip("/").rsplit(":", 1)[1])
    finally:
        stop_helper_process(process)


def read_until_closed(sock: socket.socket, seconds: float = 5.0) -> bytes:
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def health(port: int, source: str) -> bytes:
    """GET /health from `source` (an address of 127.0.0.0/8: another client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_until_closed(sock)


def test_connections_beyond_the_cap_from_one_address_are_refused(capped_helper: int) -> None:
    port = capped_helper
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(CAP)]
    try:
        time.sleep(0.5)  # every one accepted and counted by the server
        extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        answers = [read_until_closed(sock) for sock in extra]
        for sock in extra:
            sock.close()
        assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in answers), answers
        assert b"too many open connections" in answers[0]
        # Another client is served meanwhile, and the held connections still work.
        assert health(port, "127.0.0.2").startswith(b"HTTP/1.1 200 ")
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_closed(held[0]).startswith(b"HTTP/1.1 200 ")
        held.pop(0).close()
        time.sleep(0.5)  # the server sees the close
        # A freed slot is given back to the same address.
        assert health(port, "127.0.0.1").startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()


def test_without_the_cap_the_default_is_documented_and_large() -> None:
    from probes.server_limits import MAX_CONNECTIONS_PER_CLIENT
    assert CAP < MAX_CONNECTIONS_PER_CLIENT <= 1024 // 2  # half the default open-file limit
    with open("docs/reliability.md", encoding="utf-8") as docs:
        assert f"at most {MAX_CONNECTIONS_PER_CLIENT} connections per client address" in docs.read()


async def test_a_body_that_does_not_arrive_in_time_gets_408(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import probes.server_limits
    from probes.helper.app import build_app as build_helper_app
    from probes.helper.settings import HelperSettings

    monkeypatch.setattr(probes.server_limits, "BODY_TIMEOUT_SECONDS", 1.0)
    runner = web.AppRunner(build_helper_app(HelperSettings()), **runner_options(None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n{\"http_request\": ")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"not received within 1 s" in answer
        # urllib on a thread: this loop serves the helper meanwhile.
        status = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status)
        assert status == 200
    finally:
        await runner.cleanup()
