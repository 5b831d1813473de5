"""The helper's connections: one TLS handshake per endpoint, a bounded keep-alive pool, bounded caches."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from lab.certificates import certificate_pem, key_pem, make_lab_root
from probes.connection import Connection, open_connection
from probes.exchange import Exchange
from probes.helper import SERVICE_KEY, HelperSettings, TTLCache, build_app
from probes.helper.connections import IdleConnections
from probes.helper.page import PageBody

SITE_IP = "127.0.0.2"


def write_site_certificate(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A lab root (CA file for the helper) and a server context for https://127.0.0.2/."""
    root = make_lab_root()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SITE_IP)]))
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(SITE_IP))]),
            critical=False,
        )
        .sign(root.key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(certificate_pem(root.certificate))
    (directory / "leaf.pem").write_bytes(certificate_pem(leaf) + key_pem(key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "leaf.pem")
    return ca_file, context


@pytest.fixture
async def tls_site(tmp_path: Path) -> AsyncIterator[tuple[int, Path, list[int], list[str]]]:
    """An https site on 127.0.0.2 that records each connection (by transport) and each path."""
    ca_file, context = write_site_certificate(tmp_path)
    connections: list[int] = []
    paths: list[str] = []

    async def page(request: web.Request) -> web.Response:
        if id(request.transport) not in connections:
            connections.append(id(request.transport))
        paths.append(request.path)
        return web.Response(text=f"<title>{request.path}</title>" + "<p>words</p>" * 200,
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, SITE_IP, 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, ca_file, connections, paths
    finally:
        await runner.cleanup()


async def ask(server: TestServer, url: str, endpoints: list[str]) -> dict:
    body = {"http_request": url, "http_request_headers": {}, "tcp_connect": endpoints}
    async with aiohttp.ClientSession() as session:
        async with session.post(str(server.make_url("/")), data=json.dumps(body),
                                timeout=aiohttp.ClientTimeout(total=30)) as reply:
            assert reply.status == 200
            return await reply.json()


async def start_helper(settings: HelperSettings) -> TestServer:
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    return server


async def test_the_checked_connection_carries_the_page_and_a_repeated_origin_is_kept_alive(tls_site) -> None:
    port, ca_file, connections, paths = tls_site
    endpoint = f"{SITE_IP}:{port}"
    server = await start_helper(
        HelperSettings(public_ranges=(f"{SITE_IP}/32",), ca_file=str(ca_file))
    )
    try:
        first = await ask(server, f"https://{SITE_IP}:{port}/", [endpoint])
        # One connection, one handshake: the endpoint check's connection carried the GET.
        assert first["tls_handshake"][endpoint]["status"] is True
        assert first["http_request"]["status_code"] == 200 and first["http_request"]["title"] == "/"
        assert first["x_blockmon"]["certificate_chains"][endpoint][0]["subject"] == f"CN={SITE_IP}"
        assert len(connections) == 1 and paths == ["/"]
        # A first contact's connection is not kept (distinct sites would each hold one); the
        # second page of the origin (its check cached) opens one and keeps it for the third.
        second = await ask(server, f"https://{SITE_IP}:{port}/next", [endpoint])
        third = await ask(server, f"https://{SITE_IP}:{port}/third", [endpoint])
        assert (second["http_request"]["title"], third["http_request"]["title"]) == ("/next", "/third")
        assert second["tls_handshake"] == third["tls_handshake"] == first["tls_handshake"]
        assert len(connections) == 2 and paths == ["/", "/next", "/third"]
    finally:
        await server.close()


async def test_without_keep_alive_each_page_needs_its_own_connection(tls_site) -> None:
    port, ca_file, connections, paths = tls_site
    endpoint = f"{SITE_IP}:{port}"
    server = await start_helper(
        HelperSettings(public_ranges=(f"{SITE_IP}/32",), ca_file=str(ca_file), idle_connections=0)
    )
    try:
        for path in ("/", "/a", "/b"):
            answer = await ask(server, f"https://{SITE_IP}:{port}{path}", [endpoint])
            assert answer["http_request"]["title"] == path
    finally:
        await server.close()
    # The first page rode on the check; the later ones (check cached, nothing kept) each opened one.
    assert paths == ["/", "/a", "/b"] and len(connections) == 3


async def test_no_page_or_exchange_outlives_its_request(tls_site) -> None:
    port, ca_file, connections, _ = tls_site
    server = await start_helper(
        HelperSettings(public_ranges=(f"{SITE_IP}/32",), ca_file=str(ca_file), cache_size=2)
    )
    try:
        for n in range(5):
            await ask(server, f"https://{SITE_IP}:{port}/{n}", [f"{SITE_IP}:{port}"])
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, Exchange | PageBody)]
        assert alive == []
        service = server.app[SERVICE_KEY]
        assert len(service.steps.endpoint_cache) <= 2 and len(service.steps.dns_cache) <= 2
    finally:
        await server.close()


@pytest.fixture
async def loopback_connections() -> AsyncIterator[list[Connection]]:
    """Plain TCP connections to a loopback server that holds them open (or closes on request)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    opened = [await open_connection("127.0.0.1", port, limit=65536) for _ in range(3)]
    try:
        yield opened
    finally:
        for connection in opened:
            connection.abort()
        for writer in held:
            writer.transport.abort()
        server.close()


async def test_idle_connections_are_bounded_in_number_and_time(loopback_connections) -> None:
    a, b, c = loopback_connections
    idle = IdleConnections(size=2, idle_timeout=30)
    idle.keep_alive(("http", "a", "127.0.0.1", 80), a)
    idle.keep_alive(("http", "b", "127.0.0.1", 80), b)
    idle.keep_alive(("http", "c", "127.0.0.1", 80), c)
    # Full: the oldest was closed to make room.
    assert len(idle) == 2 and a.is_closing()
    assert idle.take(("http", "a", "127.0.0.1", 80)) is None
    assert idle.take(("http", "b", "127.0.0.1", 80)) == (b, False) and len(idle) == 1
    assert idle.take(("http", "b", "127.0.0.1", 80)) is None

    brief = IdleConnections(size=8, idle_timeout=0.05)
    brief.keep_alive(("http", "b", "127.0.0.1", 80), b)
    await asyncio.sleep(0.1)
    brief.close_expired()
    assert len(brief) == 0 and b.is_closing()
    await idle.close()
    assert c.is_closing()


async def test_a_hand_over_goes_to_the_page_even_with_keep_alive_off(loopback_connections) -> None:
    a, b, _ = loopback_connections
    off = IdleConnections(size=0, idle_timeout=10)
    off.keep_alive(("http", "a", "127.0.0.1", 80), a)
    assert a.is_closing() and len(off) == 0
    off.hand_over(("http", "b", "127.0.0.1", 80), b)
    assert off.take(("http", "b", "127.0.0.1", 80)) == (b, True) and len(off) == 0


async def test_a_connection_the_peer_closed_while_parked_is_not_handed_out(loopback_connections) -> None:
    a, _, _ = loopback_connections
    idle = IdleConnections(size=4, idle_timeout=30)
    key = ("http", "a", "127.0.0.1", 80)
    idle.keep_alive(key, a)
    a.eof_received()  # what the connection holds once the server's FIN has arrived
    assert idle.take(key) is None and len(idle) == 0


async def test_ttl_cache_keeps_at_most_size_entries_and_drops_the_oldest() -> None:
    cache = TTLCache(ttl=30, size=3)

    async def value(n: int) -> int:
        return n

    for n in range(5):
        assert await cache.get(n, lambda n=n: value(n)) == n
    assert len(cache) == 3
    calls: list[int] = []

    async def counted(n: int) -> int:
        calls.append(n)
        return n

    await cache.get(4, lambda: counted(4))  # still cached
    await cache.get(0, lambda: counted(0))  # dropped as the oldest: computed again
    assert calls == [0] and len(cache) == 3


def test_every_cache_and_connection_bound_of_the_helper_is_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "settings.md").read_text(encoding="utf-8")
    section = text.split("## Control helper caches and connections", 1)[1]
    bounds = ["cache_size", "cache_ttl", "idle_connections", "idle_timeout",
              "HANDOVER_SECONDS", "SIMHASH_MEMO_SIZE"]
    assert [name for name in bounds if f"`{name}`" not in section and name not in section] == []
    defaults = HelperSettings()
    assert f"`idle_connections`, {defaults.idle_connections}" in section
    assert f"`idle_timeout`, {defaults.idle_timeout:g} s" in section
    assert f"`cache_size`, {defaults.cache_size}" in section
