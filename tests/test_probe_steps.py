"""Each probe step against tiny real servers on loopback, one test per failure string it records."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.resolver
import dns.rrset
import h11
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.certificates import describe_certificate
from probes.control import fetch_control
from probes.control_client import ControlClient
from probes.control_protocol import control_shape_error
from probes.dns import addresses_from_queries, parse_resolver, probe_dns
from probes.errors import InvalidInput, classify_failure
from probes.http import HopSteps, decode_body, detect_charset, extract_title, fetch_one, probe_http
from probes.options import ProbeOptions
from probes.tcp import close_connection, probe_tcp
from probes.tls import probe_tls

LOOPBACK = "127.0.0.1"
# The test servers live on loopback, a bogon; count it as public so redirects may go there.
OPTIONS = ProbeOptions(
    dns_timeout=0.5,
    connect_timeout=0.5,
    tls_timeout=0.5,
    http_timeout=0.5,
    lab_public_ranges=("127.0.0.0/8",),
)


# ---------------------------------------------------------------- DNS server


class _DnsServer(asyncio.DatagramProtocol):
    """Answers by query name; `silent.test` never answers, `garbage.test` answers junk."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: list[str] = []
        self.queries: list[tuple[int, int, str]] = []  # (source port, id, type)
        self.lost: set[tuple[int, str]] = set()  # lossy.test: the first copy of each query is "lost"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.clients.append(addr[0])
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().rstrip(".")
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((addr[1], query.id, qtype))
        if name == "silent.test":
            return
        if name == "lossy.test" and (query.id, qtype) not in self.lost:
            self.lost.add((query.id, qtype))
            return
        if name == "garbage.test":
            self.transport.sendto(data[:2] + b"\x81\x80\xff\xff", addr)
            return
        response = dns.message.make_response(query)
        rcodes = {"nx.test": dns.rcode.NXDOMAIN, "fail.test": dns.rcode.SERVFAIL, "refuse.test": dns.rcode.REFUSED}
        if name in rcodes:
            response.set_rcode(rcodes[name])
        elif name == "big.test":
            response.flags |= dns.flags.TC  # "too big for UDP": the client must retry over TCP
        elif name == "xn--e1aybc.test" and qtype == "A":  # тест.test, asked for in its ASCII form
            response.answer.append(dns.rrset.from_text("xn--e1aybc.test.", 60, "IN", "A", LOOPBACK))
        elif name == "lossy.test" and qtype == "A":
            response.answer.append(dns.rrset.from_text("lossy.test.", 60, "IN", "A", "127.0.0.8"))
        elif name == "chaos.test":
            # An A record of an unassigned class: its data is opaque to dnspython (no .address).
            response.answer.append(dns.rrset.from_text("chaos.test.", 60, "CLASS42", qtype, "\\# 4 7f000001"))
        elif name == "www.ok.test":
            response.answer.append(dns.rrset.from_text("www.ok.test.", 60, "IN", "CNAME", "edge.ok.test."))
            if qtype == "A":
                response.answer.append(dns.rrset.from_text("edge.ok.test.", 300, "IN", "A", "127.0.0.5", "127.0.0.6"))
            else:
                response.answer.append(dns.rrset.from_text("edge.ok.test.", 300, "IN", "AAAA", "::1"))
        self.transport.sendto(response.to_wire(), addr)


async def _answer_over_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    length = struct.unpack("!H", await reader.readexactly(2))[0]
    query = dns.message.from_wire(await reader.readexactly(length))
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 30, "IN", "A", "127.0.0.7"))
    wire = response.to_wire()
    writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()
    writer.close()


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[str, _DnsServer]]:
    loop = asyncio.get_running_loop()
    for _ in range(10):  # the same port number for UDP and TCP; retry when TCP's is taken
        transport, protocol = await loop.create_datagram_endpoint(_DnsServer, local_addr=(LOOPBACK, 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(_answer_over_tcp, LOOPBACK, port)
            break
        except OSError:
            transport.close()
    yield f"{LOOPBACK}:{port}", protocol
    tcp.close()
    transport.close()


def _with_resolver(address: str, **changes: object) -> ProbeOptions:
    from dataclasses import replace

    return replace(OPTIONS, resolvers=(address,), **changes)  # type: ignore[arg-type]


async def test_dns_records_cname_chain_addresses_and_ttls(dns_server):
    address, _ = dns_server
    queries = await probe_dns("www.ok.test", _with_resolver(address))
    a_query, aaaa_query = queries
    assert a_query["query_type"] == "A" and a_query["failure"] is None and a_query["rcode"] == 0
    assert a_query["engine"] == "udp" and a_query["resolver_address"] == address
    assert a_query["answers"][0] == {"answer_type": "CNAME", "hostname": "edge.ok.test", "ttl": 60}
    assert {a["ipv4"] for a in a_query["answers"][1:]} == {"127.0.0.5", "127.0.0.6"}
    assert all(a["ttl"] == 300 for a in a_query["answers"][1:])
    assert aaaa_query["answers"][-1]["ipv6"] == "::1"
    assert addresses_from_queries(queries)[-1] == "::1"
    assert set(addresses_from_queries(queries)[:2]) == {"127.0.0.5", "127.0.0.6"}


@pytest.mark.parametrize(
    ("hostname", "failure", "rcode"),
    [
        ("nx.test", "dns_nxdomain_error", 3),
        ("fail.test", "dns_servfail_error", 2),
        ("refuse.test", "dns_refused_error", 5),
        ("empty.test", "dns_no_answer", 0),
    ],
)
async def test_dns_failure_from_rcode(dns_server, hostname, failure, rcode):
    address, _ = dns_server
    queries = await probe_dns(hostname, _with_resolver(address))
    assert [q["failure"] for q in queries] == [failure, failure]
    assert queries[0]["rcode"] == rcode


async def test_dns_silent_server_is_a_timeout(dns_server):
    address, _ = dns_server
    queries = await probe_dns("silent.test", _with_resolver(address, dns_timeout=0.3))
    assert [q["failure"] for q in queries] == ["generic_timeout_error"] * 2


async def test_dns_lost_query_is_sent_again_within_the_timeout(dns_server):
    # On a lossy path one lost datagram must not become a timeout (a false "dns" verdict).
    address, server = dns_server
    queries = await probe_dns("lossy.test", _with_resolver(address, dns_timeout=3.0))
    assert [q["failure"] for q in queries] == [None, "dns_no_answer"]
    assert addresses_from_queries(queries) == ["127.0.0.8"]
    sent = [(port, query_id, qtype) for port, query_id, qtype in server.queries]
    # Each query went twice, the same id from the same socket; the second copy was answered.
    assert len(sent) == 4 and len(set(sent)) == 2
    assert all(q["t"] - q["t0"] >= 0.9 for q in queries)


async def test_dns_junk_reply_is_server_misbehaving(dns_server):
    address, _ = dns_server
    queries = await probe_dns("garbage.test", _with_resolver(address, dns_timeout=0.3))
    assert queries[0]["failure"] == "dns_server_misbehaving"
    assert queries[0]["answers"] == []


async def test_dns_answer_of_another_class_is_no_answer(dns_server):
    # A broken or hostile resolver's non-IN record once crashed the measurement (AttributeError).
    address, _ = dns_server
    queries = await probe_dns("chaos.test", _with_resolver(address))
    assert [q["failure"] for q in queries] == ["dns_no_answer", "dns_no_answer"]
    assert addresses_from_queries(queries) == []


async def test_dns_truncated_answer_is_retried_over_tcp(dns_server):
    address, _ = dns_server
    queries = await probe_dns("big.test", _with_resolver(address))
    assert queries[0]["failure"] is None
    assert queries[0]["answers"] == [{"answer_type": "A", "ipv4": "127.0.0.7", "ttl": 30}]


async def test_dns_closed_port_is_connection_refused():
    queries = await probe_dns("www.ok.test", _with_resolver(f"{LOOPBACK}:{_closed_port()}"))
    assert [q["failure"] for q in queries] == ["connection_refused"] * 2


@pytest.mark.parametrize("first", ["closed", "silent"])
async def test_dns_dead_first_resolver_falls_back_to_the_next(dns_server, first):
    # A stub resolver moves on when a server cannot be reached (ICMP port unreachable), not
    # only on silence; stopping there made a dead first resolver look like DNS blocking. The
    # entry then records the answer, not the first server's failure.
    address, _ = dns_server
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((LOOPBACK, 0))
    dead = f"{LOOPBACK}:{silent.getsockname()[1] if first == 'silent' else _closed_port()}"
    options = replace(OPTIONS, resolvers=(dead, address), dns_timeout=0.3)
    try:
        queries = await probe_dns("www.ok.test", options)
    finally:
        silent.close()
    assert [q["failure"] for q in queries] == [None, None]
    assert queries[0]["resolver_address"] == address
    assert "127.0.0.5" in addresses_from_queries(queries)


async def test_dns_binds_to_source_address(dns_server):
    address, server = dns_server
    await probe_dns("www.ok.test", _with_resolver(address, source_address="127.0.0.9"))
    assert set(server.clients) == {"127.0.0.9"}


async def test_dns_without_named_resolvers_uses_the_system_ones(dns_server, monkeypatch):
    # Stands in for /etc/resolv.conf, whose nameserver must not be reached from tests.
    import probes.dns

    ip, port = dns_server[0].split(":")
    monkeypatch.setattr(probes.dns, "system_resolvers", lambda: (probes.dns.Resolver(ip, int(port), "system"),))
    queries = await probe_dns("www.ok.test", OPTIONS)
    assert queries[0]["engine"] == "system" and queries[0]["failure"] is None


async def test_dns_a_and_aaaa_share_one_socket_with_their_own_ids(dns_server):
    address, server = dns_server
    for _ in range(2):
        queries = await probe_dns("www.ok.test", _with_resolver(address))
        assert [q["failure"] for q in queries] == [None, None]
    (port_a, id_a, type_a), (port_aaaa, id_aaaa, type_aaaa), (next_port, _, _), _ = server.queries
    assert {type_a, type_aaaa} == {"A", "AAAA"}
    assert port_a == port_aaaa and id_a != id_aaaa
    assert next_port != port_a  # each lookup opens a fresh socket (a new source port)


async def test_dns_ip_literal_needs_no_query(dns_server):
    assert await probe_dns("127.0.0.5", _with_resolver(dns_server[0])) == []


def test_parse_resolver_forms():
    assert parse_resolver("127.0.0.1").address == "127.0.0.1:53"
    assert parse_resolver("127.0.0.1:5353").port == 5353
    assert parse_resolver("[::1]:54").address == "[::1]:54"
    with pytest.raises(InvalidInput, match="resolver 'dns.example'"):
        parse_resolver("dns.example")
    with pytest.raises(InvalidInput, match="out of range"):
        parse_resolver("127.0.0.1:70000")


# ---------------------------------------------------------------- TCP


@pytest.fixture
async def tcp_server() -> AsyncIterator[Callable[[Callable[..., Awaitable[None]]], Awaitable[int]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(handler: Callable[..., Awaitable[None]]) -> int:
        server = await asyncio.start_server(handler, LOOPBACK, 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, which makes the kernel send a RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


async def test_tcp_success_returns_open_streams(tcp_server):
    peers: list[str] = []

    async def handler(reader, writer):
        peers.append(writer.get_extra_info("peername")[0])
        writer.close()

    port = await tcp_server(handler)
    entry, connection = await probe_tcp(LOOPBACK, port, ProbeOptions(source_address="127.0.0.7"))
    assert entry["status"] == {"success": True, "failure": None, "blocked": None}
    assert entry["ip"] == LOOPBACK and entry["port"] == port and entry["t"] >= entry["t0"]
    assert connection is not None
    await close_connection(connection)
    await asyncio.sleep(0.05)
    assert peers == ["127.0.0.7"]


async def test_tcp_closed_port_is_connection_refused():
    entry, connection = await probe_tcp(LOOPBACK, _closed_port(), OPTIONS)
    assert connection is None
    assert entry["status"] == {"success": False, "failure": "connection_refused", "blocked": None}


async def test_tcp_full_backlog_is_a_timeout():
    # A listener that never accepts: once its backlog is full the kernel drops further SYNs.
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((LOOPBACK, port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        entry, connection = await probe_tcp(LOOPBACK, port, ProbeOptions(connect_timeout=0.4))
        assert connection is None
        assert entry["status"]["failure"] == "generic_timeout_error"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---------------------------------------------------------------- TLS


@dataclass
class _Pki:
    ca_file: str
    ca_name: str
    server_context: ssl.SSLContext
    expired_context: ssl.SSLContext


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: str, issuer: x509.Name, key, signer, *, ca: bool, days: tuple[int, int], sans=()):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    return builder.sign(signer, hashes.SHA256())


def _server_context(tmp: Path, name: str, certificate, key) -> ssl.SSLContext:
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> _Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Probe Test Root")])
    ca = _certificate("Probe Test Root", ca_name, ca_key, ca_key, ca=True, days=(-1, 30))
    (tmp / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_key = _key()
    leaf = _certificate("good.test", ca_name, leaf_key, ca_key, ca=False, days=(-1, 30), sans=["good.test"])
    expired = _certificate("good.test", ca_name, leaf_key, ca_key, ca=False, days=(-30, -1), sans=["good.test"])
    return _Pki(
        ca_file=str(tmp / "ca.pem"),
        ca_name="CN=Probe Test Root",
        server_context=_server_context(tmp, "leaf", leaf, leaf_key),
        expired_context=_server_context(tmp, "expired", expired, leaf_key),
    )


@pytest.fixture
async def tls_server(pki) -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(context: ssl.SSLContext | None = None) -> int:
        async def handler(reader, writer):
            await reader.read(1)
            writer.close()

        server = await asyncio.start_server(handler, LOOPBACK, 0, ssl=context or pki.server_context)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


def _tls_options(pki: _Pki, **changes) -> ProbeOptions:
    from dataclasses import replace

    return replace(OPTIONS, ca_file=pki.ca_file, **changes)


async def test_tls_success_records_session_and_chain(pki, tls_server):
    port = await tls_server()
    entry, connection = await probe_tls(LOOPBACK, port, "good.test", _tls_options(pki))
    assert connection is not None
    await close_connection(connection)
    assert entry["failure"] is None
    assert entry["address"] == f"{LOOPBACK}:{port}" and entry["server_name"] == "good.test"
    assert entry["tls_version"] == "TLSv1.3" and entry["cipher_suite"].startswith("TLS_")
    assert entry["negotiated_protocol"] == "http/1.1"
    assert entry["certificate_chain"][0]["subject"] == "CN=good.test"
    assert entry["certificate_chain"][0]["issuer"] == pki.ca_name
    assert entry["peer_certificates"][0]["format"] == "base64"


async def test_tls_over_existing_tcp_connection(pki, tls_server):
    port = await tls_server()
    _, tcp_streams = await probe_tcp(LOOPBACK, port, OPTIONS)
    entry, connection = await probe_tls(LOOPBACK, port, "good.test", _tls_options(pki), connection=tcp_streams)
    assert entry["failure"] is None and connection is tcp_streams
    await close_connection(connection)


async def test_tls_unknown_authority_still_records_presented_chain(pki, tls_server):
    port = await tls_server()
    # No ca_file: the system store does not know the test root.
    entry, connection = await probe_tls(LOOPBACK, port, "good.test", OPTIONS)
    assert connection is None
    assert entry["failure"] == "ssl_unknown_authority"
    assert entry["certificate_chain"][0]["issuer"] == pki.ca_name
    assert entry["certificate_chain"][0]["sans"] == ["good.test"]


async def test_tls_wrong_name_is_invalid_hostname(pki, tls_server):
    port = await tls_server()
    entry, _ = await probe_tls(LOOPBACK, port, "other.test", _tls_options(pki))
    assert entry["failure"] == "ssl_invalid_hostname"
    assert entry["certificate_chain"][0]["subject"] == "CN=good.test"


async def test_tls_certificate_not_for_the_ip_address_is_invalid_hostname(pki, tls_server):
    # https://IP/: OpenSSL reports X509_V_ERR_IP_ADDRESS_MISMATCH (64), not the name mismatch (62).
    port = await tls_server()
    entry, _ = await probe_tls(LOOPBACK, port, LOOPBACK, _tls_options(pki))
    assert entry["failure"] == "ssl_invalid_hostname"


async def test_tls_expired_certificate_is_invalid_certificate(pki, tls_server):
    port = await tls_server(pki.expired_context)
    entry, _ = await probe_tls(LOOPBACK, port, "good.test", _tls_options(pki))
    assert entry["failure"] == "ssl_invalid_certificate"


async def test_tls_unverified_handshake_succeeds_with_any_name(pki, tls_server):
    port = await tls_server()
    entry, connection = await probe_tls(LOOPBACK, port, None, OPTIONS, verify=False)
    await close_connection(connection)
    assert entry["failure"] is None and entry["no_tls_verify"] is True and entry["server_name"] is None


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ("reset", "connection_reset"),
        ("silent", "generic_timeout_error"),
        ("close", "eof_error"),
        ("plaintext", "ssl_failed_handshake"),
    ],
)
async def test_tls_cut_handshakes(pki, tcp_server, behaviour, failure):
    async def handler(reader, writer):
        await reader.read(1)  # the ClientHello has arrived
        if behaviour == "reset":
            _reset(writer)
        elif behaviour == "close":
            writer.close()
        elif behaviour == "plaintext":
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            await writer.drain()
            await asyncio.sleep(1)
        else:
            await asyncio.sleep(2)

    port = await tcp_server(handler)
    entry, connection = await probe_tls(LOOPBACK, port, "good.test", _tls_options(pki, tls_timeout=0.4))
    assert connection is None
    assert entry["failure"] == failure


# ---------------------------------------------------------------- HTTP


def _page(title: str, size: int = 0) -> bytes:
    body = f"<html><head><title> {title} &amp; co </title></head><body>{'x' * size}</body></html>".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _http_server(tcp_server, respond: Callable[[bytes], bytes | None]) -> int:
    """A raw HTTP server: `respond(request_head)` gives the bytes to send (None = reset)."""

    async def handler(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        reply = respond(head)
        if reply is None:
            _reset(writer)
            return
        writer.write(reply)
        await writer.drain()
        if reply.endswith(b"HANG"):
            await asyncio.sleep(2)
        writer.close()

    return await tcp_server(handler)


async def _get(port: int, path: str = "/", options: ProbeOptions = OPTIONS) -> list[dict]:
    _, connection = await probe_tcp(LOOPBACK, port, options)
    assert connection is not None
    return await probe_http(f"http://{LOOPBACK}:{port}{path}", options, connection=connection, address=f"{LOOPBACK}:{port}")


async def test_http_records_browser_request_and_response(tcp_server):
    heads: list[bytes] = []
    port = await _http_server(tcp_server, lambda head: heads.append(head) or _page("Azattyq"))
    (entry,) = await _get(port, "/news?id=1")
    assert entry["failure"] is None
    response = entry["response"]
    assert response["code"] == 200 and response["title"] == "Azattyq & co"
    assert response["headers"]["Content-Type"] == "text/html"
    assert ["Content-Type", "text/html"] in response["headers_list"]
    assert response["body_length"] == len(response["body"]) and not response["body_is_truncated"]
    assert heads[0].startswith(b"GET /news?id=1 HTTP/1.1\r\n")
    assert b"Accept-Language: ru,kk;q=0.9,en;q=0.8" in heads[0]
    assert b"User-Agent: Mozilla/5.0" in heads[0]
    assert entry["request"]["headers"]["Host"] == f"{LOOPBACK}:{port}"


async def test_http_body_is_capped(tcp_server):
    from dataclasses import replace

    port = await _http_server(tcp_server, lambda head: _page("big", 5000))
    (entry,) = await _get(port, options=replace(OPTIONS, body_limit=1000))
    assert entry["response"]["body_is_truncated"] is True
    assert entry["response"]["body_length"] == 1000
    assert entry["failure"] is None


async def test_http_large_response_head_is_read(tcp_server):
    # 40 KiB of headers (cookies, CSP): browsers and the control's aiohttp read them; h11's
    # default 16 KiB cap once made such an honest site an http_invalid_response (http.reset).
    cookies = [b"Set-Cookie: c%d=%s\r\n" % (i, b"v" * 1000) for i in range(40)]
    status_line, rest = _page("Many cookies").split(b"\r\n", 1)

    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(status_line + b"\r\n")
        for cookie in cookies:  # in pieces, as the head arrives from afar
            writer.write(cookie)
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(rest)
        await writer.drain()
        writer.close()

    port = await tcp_server(handler)
    (entry,) = await _get(port)
    assert entry["failure"] is None
    assert entry["response"]["code"] == 200 and entry["response"]["title"] == "Many cookies & co"
    assert len(entry["response"]["headers_list"]) == 42


async def test_http_follows_redirects_most_recent_first(tcp_server):
    def respond(head: bytes) -> bytes:
        if head.startswith(b"GET /old "):
            return b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return _page("New home")

    port = await _http_server(tcp_server, respond)
    requests = await _get(port, "/old")
    assert [r["response"]["code"] for r in requests] == [200, 301]
    assert requests[0]["request"]["url"] == f"http://{LOOPBACK}:{port}/new"
    assert requests[0]["address"] == f"{LOOPBACK}:{port}"


async def test_http_redirect_hops_record_their_own_connections(tcp_server):
    def respond(head: bytes) -> bytes:
        if head.startswith(b"GET /old "):
            return b"HTTP/1.1 302 Found\r\nLocation: /middle\r\nContent-Length: 0\r\n\r\n"
        if head.startswith(b"GET /middle "):
            return b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return _page("New home")

    port = await _http_server(tcp_server, respond)
    _, connection = await probe_tcp(LOOPBACK, port, OPTIONS)
    steps = HopSteps()
    requests = await probe_http(
        f"http://{LOOPBACK}:{port}/old", OPTIONS, connection=connection, address=f"{LOOPBACK}:{port}", hop_steps=steps
    )
    assert [r["response"]["code"] for r in requests] == [200, 301, 302]
    # The first request used the connection it was given; each redirect hop opened its own.
    assert [(e["ip"], e["port"], e["status"]["success"], e["x_redirect_hop"]) for e in steps.tcp_connect] == [
        (LOOPBACK, port, True, 1),
        (LOOPBACK, port, True, 2),
    ]
    assert steps.queries == [] and steps.tls_handshakes == []  # an IP literal over plain http


async def test_http_redirect_loop_is_too_many_redirects(tcp_server):
    from dataclasses import replace

    port = await _http_server(tcp_server, lambda head: b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
    requests = await _get(port, options=replace(OPTIONS, max_redirects=2))
    assert requests[0]["failure"] == "http_too_many_redirects"
    assert len(requests) == 4  # the first request, two redirects followed, the refused third


async def test_http_redirect_to_bogon_is_never_followed_into(tcp_server):
    port = await _http_server(tcp_server, lambda head: b"HTTP/1.1 302 Found\r\nLocation: http://10.1.2.3/\r\nContent-Length: 0\r\n\r\n")
    requests = await _get(port)
    assert requests[0]["request"]["url"] == "http://10.1.2.3/"
    assert requests[0]["failure"] is not None and requests[0]["response"] is None


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:99999/", "http://127.0.0.1:port/", "http://[::1/", "http://a..b/", f"http://{'a' * 64}.kz/"]
)
async def test_http_redirect_to_a_malformed_url_is_a_failure(tcp_server, location):
    # A server's Location once raised ValueError from urlsplit().port and lost the measurement.
    reply = b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location.encode()
    port = await _http_server(tcp_server, lambda head: reply)
    requests = await _get(port)
    assert [r["failure"] for r in requests] == ["http_invalid_response", None]
    assert requests[0]["request"]["url"] == location and requests[0]["response"] is None


async def test_http_non_ascii_path_and_redirect_go_out_percent_encoded(tcp_server, dns_server):
    # A Cyrillic article URL, then a Location in raw UTF-8 (as many servers send it) to an IDN
    # host: browsers send UTF-8 percent-encoded paths and the ASCII host; the step once raised
    # UnicodeEncodeError from h11 and lost the measurement.
    heads: list[bytes] = []
    port = 0

    def respond(head: bytes) -> bytes:
        heads.append(head)
        if len(heads) == 1:
            location = f"http://тест.test:{port}/новости?q=а б"
            return b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location.encode()
        return _page("Жаңалықтар")

    port = await _http_server(tcp_server, respond)
    address, _ = dns_server
    options = _with_resolver(address)
    _, connection = await probe_tcp(LOOPBACK, port, options)
    requests = await probe_http(
        f"http://{LOOPBACK}:{port}/қазақ", options, connection=connection, address=f"{LOOPBACK}:{port}"
    )
    assert [r["failure"] for r in requests] == [None, None]
    assert heads[0].startswith(b"GET /%D2%9B%D0%B0%D0%B7%D0%B0%D2%9B HTTP/1.1\r\n")
    assert heads[1].startswith(b"GET /%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8?q=%D0%B0%20%D0%B1 HTTP/1.1\r\n")
    assert b"\r\nHost: xn--e1aybc.test:%d\r\n" % port in heads[1]
    assert requests[0]["request"]["url"] == f"http://xn--e1aybc.test:{port}/новости?q=а б"
    assert requests[0]["response"]["title"] == "Жаңалықтар & co"


@pytest.mark.parametrize(
    ("reply", "failure"),
    [
        (None, "connection_reset"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "http_invalid_response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "eof_error"),
        (b"", "eof_error"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHANG", "generic_timeout_error"),
    ],
)
async def test_http_failures(tcp_server, reply, failure):
    port = await _http_server(tcp_server, lambda head: reply)
    (entry,) = await _get(port)
    assert entry["failure"] == failure


async def test_http_partial_response_is_kept_on_timeout(tcp_server):
    port = await _http_server(tcp_server, lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHANG")
    (entry,) = await _get(port)
    assert entry["response"]["code"] == 200 and entry["response"]["body"] == "HANG"


async def test_https_get_over_tls_streams(pki, tls_server):
    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_page("Secure"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, LOOPBACK, 0, ssl=pki.server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        options = _tls_options(pki)
        _, connection = await probe_tls(LOOPBACK, port, "good.test", options)
        entry = await fetch_one(f"https://good.test:{port}/", connection, f"{LOOPBACK}:{port}", options)
        assert entry["failure"] is None and entry["response"]["title"] == "Secure & co"
    finally:
        server.close()


def test_declared_charset_decodes_body_and_title():
    page = "<html><head><title>Доступ ограничен</title></head></html>".encode("cp1251")
    assert extract_title(page, "text/html; charset=windows-1251") == "Доступ ограничен"
    meta_page = b'<meta charset="windows-1251">' + page
    assert extract_title(meta_page) == "Доступ ограничен"
    assert "ограничен" in decode_body(meta_page, "text/html")
    assert detect_charset(b"<p>no declaration</p>", "text/html; charset=no-such-codec") == "utf-8"


@pytest.mark.parametrize(
    "declaration",
    ["text/html; charset=base64", "text/html; charset=idna", "text/html; charset=punycode", "text/html; charset=undefined"],
)
async def test_a_charset_that_is_no_text_encoding_reads_as_utf8(tcp_server, declaration):
    # Python knows these codec names but cannot decode text with them: the step once raised.
    body = "<title>Блог</title>".encode() + b"\xff"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (declaration.encode(), len(body))
    port = await _http_server(tcp_server, lambda _: head + body)
    (entry,) = await _get(port)
    assert entry["failure"] is None
    assert entry["response"]["title"] == "Блог"
    assert entry["response"]["body"] == body.decode("utf-8", errors="replace")


def test_extract_title():
    assert extract_title(b"<HTML><TITLE lang=ru>\n  \xd0\x9a\xd0\xb7 \n</TITLE>") == "Кз"
    assert extract_title(b"<html>no title</html>") == ""
    # The first <title ...> that a </title follows; a second opening inside is text.
    assert extract_title(b"<title>A <title>B</title><title>C</title>") == "A <title>B"
    assert extract_title(b"<title>never closed") == ""
    assert extract_title(b"<title never closed either") == ""
    assert extract_title(b"<svg><title>icon</title></svg>") == "icon"
    # Hostile markup is read in one pass (it once cost seconds of CPU; not timed here).
    assert extract_title(b"<title>" * 9000) == ""
    assert extract_title(b"<title " * 9000 + b"></title>") == ""


# ---------------------------------------------------------------- control


@pytest.fixture
async def control_server() -> AsyncIterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer sesame":
            return web.json_response({"error": "token"}, status=401)
        received.append(await request.json())
        return web.json_response({"dns": {"failure": None, "addrs": ["127.0.0.5"]}, "tcp_connect": {}})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://{LOOPBACK}:{port}/", received
    await runner.cleanup()


async def test_control_request_shape_and_token(control_server):
    from dataclasses import replace

    url, received = control_server
    options = replace(OPTIONS, helper_url=url, helper_token="sesame")
    async with ControlClient() as session:
        control, failure = await fetch_control(session, options, "https://good.test/", ["127.0.0.5", "::1"])
    assert failure is None and control["dns"]["addrs"] == ["127.0.0.5"]
    body = received[0]
    assert body["http_request"] == "https://good.test/"
    assert body["tcp_connect"] == ["127.0.0.5:443", "[::1]:443"]
    assert body["http_request_headers"]["Accept-Language"] == ["ru,kk;q=0.9,en;q=0.8"]
    assert body["x_quic_enabled"] is False


async def test_control_refusal_and_down_helper_are_failures(control_server):
    from dataclasses import replace

    url, _ = control_server
    async with ControlClient() as session:
        refused = await fetch_control(session, replace(OPTIONS, helper_url=url), "http://good.test/", [])
        down = await fetch_control(
            session, replace(OPTIONS, helper_url=f"http://{LOOPBACK}:{_closed_port()}/"), "http://good.test/", []
        )
    assert refused == ({}, "http_invalid_response")
    assert down == ({}, "connection_refused")


async def serve_control_bytes(chunks: list[bytes]) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for chunk in chunks:  # arrives in pieces, as a large answer over TCP does
            await response.write(chunk)
            await asyncio.sleep(0.001)
        return response

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "control",
    [
        {"dns": True},
        {"dns": {"addrs": "127.0.0.5"}},
        {"tcp_connect": {"127.0.0.5:80": "yes"}},
        {"tls_handshake": {"127.0.0.5:443": {"failure": 7}}},
        {"http_request": {"status_code": "200"}},
        {"http_request": {"headers": ["Server", "x"]}},
        {"ip_info": {"127.0.0.5": {"asn": "AS1"}}},
        {"x_blockmon": {"certificate_chains": {"127.0.0.5:443": ["CN=x"]}}},
    ],
)
async def test_a_control_answer_of_another_shape_is_a_failure(control):
    # A broken or foreign helper's answer once reached the analysis and crashed the measurement.
    runner, port = await serve_control_bytes([json.dumps(control).encode()])
    try:
        async with ControlClient() as session:
            answer = await fetch_control(session, replace(OPTIONS, helper_url=f"http://{LOOPBACK}:{port}/"), "http://good.test/", [])
    finally:
        await runner.cleanup()
    assert answer == ({}, "http_invalid_response")


async def test_a_control_answer_is_read_whole_and_an_oversized_one_refused():
    from probes.control import MAX_CONTROL_ANSWER_BYTES

    valid = json.dumps({"dns": {"failure": None, "addrs": ["192.0.2.1"]},
                        "http_request": {"title": "t" * 200_000, "status_code": 200}}).encode()
    runner, port = await serve_control_bytes([valid[i:i + 1000] for i in range(0, len(valid), 1000)])
    huge = [b" " * 65536] * (MAX_CONTROL_ANSWER_BYTES // 65536 + 2) + [b"{}"]
    huge_runner, huge_port = await serve_control_bytes(huge)
    try:
        async with ControlClient() as session:
            whole = await fetch_control(session, replace(OPTIONS, helper_url=f"http://{LOOPBACK}:{port}/"),
                                        "http://good.test/", [])
            oversized = await fetch_control(
                session, replace(OPTIONS, helper_url=f"http://{LOOPBACK}:{huge_port}/"), "http://good.test/", [])
    finally:
        await runner.cleanup()
        await huge_runner.cleanup()
    assert whole[1] is None and len(whole[0]["http_request"]["title"]) == 200_000
    assert oversized == ({}, "http_invalid_response")


def test_every_golden_control_has_the_protocol_shape():
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "golden").glob("*.json")):
        control = json.loads(path.read_text(encoding="utf-8"))["test_keys"].get("control") or {}
        assert control_shape_error(control) is None, path.name


# ---------------------------------------------------------------- classifier and certificates


@pytest.mark.parametrize(
    ("exception", "failure"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection_refused"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection_reset"),
        (OSError(errno.EHOSTUNREACH, "no route"), "host_unreachable"),
        (OSError(errno.ENETUNREACH, "no net"), "network_unreachable"),
        (OSError(errno.EACCES, "odd"), "unknown_failure"),
        (TimeoutError(), "generic_timeout_error"),
        (dns.exception.Timeout(), "generic_timeout_error"),
        (dns.resolver.NXDOMAIN(), "dns_nxdomain_error"),
        (dns.exception.FormError(), "dns_server_misbehaving"),
        (ssl.SSLEOFError(), "eof_error"),
        (h11.RemoteProtocolError("bad"), "http_invalid_response"),
        (asyncio.IncompleteReadError(b"", 10), "eof_error"),
        (aiohttp.ServerDisconnectedError(), "eof_error"),
    ],
)
def test_classify_failure(exception, failure):
    assert classify_failure(exception) == failure


@pytest.mark.parametrize(("code", "failure"), [(18, "ssl_unknown_authority"), (20, "ssl_unknown_authority"), (62, "ssl_invalid_hostname"), (10, "ssl_invalid_certificate")])
def test_classify_certificate_errors_by_verify_code(code, failure):
    error = ssl.SSLCertVerificationError()
    error.verify_code = code
    assert classify_failure(error) == failure


@pytest.mark.parametrize("bug", [TypeError("bug"), KeyError("k"), ValueError("v"), h11.LocalProtocolError("ours")])
def test_programming_errors_propagate(bug):
    with pytest.raises(type(bug)):
        classify_failure(bug)


def test_describe_certificate(pki):
    der = ssl.PEM_cert_to_DER_cert(Path(pki.ca_file).read_text())
    description = describe_certificate(der)
    assert description["subject"] == description["issuer"] == pki.ca_name
    assert description["not_before"].endswith("Z") and len(description["sha256"]) == 64
    assert len(description["sha1"]) == 40 and description["sans"] == []
    # Descriptions are remembered per certificate; what a caller does to its copy stays there.
    description["sans"].append("changed.test")
    description["subject"] = "CN=changed"
    again = describe_certificate(der)
    assert again["sans"] == [] and again["subject"] == pki.ca_name and again is not description
    garbage = describe_certificate(b"not a certificate")
    assert garbage["subject"] is None and "parse_error" in garbage
