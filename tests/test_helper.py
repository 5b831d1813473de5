"""The control helper: protocol shape against the lab, refusals, token, limits, and that it keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import subprocess
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lab import LabInfo
from monitor.commands.helper import TOKEN_ENV
from probes.bogons import is_bogon
from probes.helper import (
    HelperSettings,
    RequestRefused,
    TTLCache,
    build_app,
    parse_control_request,
)
from tests.fixtures.helper import (
    BLOCKMON,
    lab_helper_arguments,
    start_helper_process,
    stop_helper_process,
)


async def post(
    url: str, body: bytes | dict, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, data=data, headers=headers or {}, timeout=aiohttp.ClientTimeout(total=30)
        ) as reply:
            return reply.status, await reply.json(content_type=None)


def control_body(url: str, endpoints: list[str] | None = None) -> dict:
    return {
        "http_request": url,
        "http_request_headers": {"User-Agent": ["test"]},
        "tcp_connect": endpoints or [],
    }


async def test_protocol_shape_for_a_working_https_site(lab_info: LabInfo, helper_url: str) -> None:
    address = lab_info.site_addresses["ok.lab.test"]
    endpoint = f"{address}:443"
    status, control = await post(helper_url, control_body("https://ok.lab.test/", [endpoint]))
    assert status == 200, control
    assert set(control) >= {
        "dns",
        "tcp_connect",
        "tls_handshake",
        "quic_handshake",
        "http_request",
        "ip_info",
        "x_blockmon",
    }
    assert control["dns"] == {"failure": None, "addrs": [address]}
    assert control["tcp_connect"][endpoint] == {"status": True, "failure": None}
    assert control["tls_handshake"][endpoint] == {
        "server_name": "ok.lab.test",
        "status": True,
        "failure": None,
    }
    page = control["http_request"]
    assert page["failure"] is None and page["status_code"] == 200 and page["body_length"] > 0
    assert page["title"] == "ok.lab.test"
    # Resolved by the helper (1), given by the probe (2), valid certificate for the host (8).
    assert control["ip_info"][address]["flags"] == 1 | 2 | 8
    chain = control["x_blockmon"]["certificate_chains"][endpoint]
    assert chain[0]["subject"] == "CN=ok.lab.test" and "blockmon lab" in chain[0]["issuer"]
    assert (
        len(control["x_blockmon"]["body_sha256"]) == 64
        and len(control["x_blockmon"]["body_simhash"]) == 16
    )


async def test_same_body_hash_as_a_direct_fetch(lab_info: LabInfo, helper_url: str) -> None:
    status, control = await post(
        helper_url + "api/v1/control", control_body("http://http-diff.lab.test/")
    )
    assert status == 200
    address = lab_info.site_addresses["http-diff.lab.test"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://{address}/", headers={"Host": "http-diff.lab.test"}
        ) as reply:
            body = await reply.read()
    assert control["http_request"]["body_length"] == len(body)
    assert control["x_blockmon"]["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_a_dead_domain_is_reported_as_failures(helper_url: str) -> None:
    status, control = await post(helper_url, control_body("https://down-nxdomain.lab.test/"))
    assert status == 200
    assert control["dns"] == {"failure": "dns_nxdomain_error", "addrs": []}
    assert control["http_request"]["failure"] == "dns_nxdomain_error"
    assert control["tcp_connect"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (control_body("http://127.0.0.1:9/"), "http_request: 127.0.0.1"),
        (control_body("http://[::1]:9/"), "http_request: ::1"),
        (control_body("http://[::127.0.0.1]:9/"), "http_request: ::127.0.0.1"),
        (control_body("http://192.168.1.1/"), "http_request: 192.168.1.1"),
        (control_body("http://ok.lab.test/", ["10.0.0.1:80"]), "tcp_connect: 10.0.0.1:80"),
        (control_body("http://ok.lab.test/", ["127.0.0.1:22"]), "tcp_connect: 127.0.0.1:22"),
        # Behind a NAT64 gateway these reach the IPv4 address in their last 32 bits.
        (control_body("http://[64:ff9b::7f00:1]:9/"), "http_request: 64:ff9b::7f00:1"),
        (control_body("http://[64:ff9b::a9fe:a9fe]/"), "http_request: 64:ff9b::a9fe:a9fe"),
        (control_body("http://[::ffff:0:7f00:1]:9/"), "http_request: ::ffff:0:7f00:1"),
        (control_body("http://[64:ff9b:1::808:808]/"), "http_request: 64:ff9b:1::808:808"),
        (control_body("http://ok.lab.test/", ["[64:ff9b::a00:1]:80"]),
         "tcp_connect: [64:ff9b::a00:1]:80"),
    ],
)
async def test_private_and_loopback_targets_are_refused(
    helper_url: str, body: dict, field: str
) -> None:
    status, reply = await post(helper_url, body)
    assert status == 403
    assert reply["error"].startswith(field) and "refused range" in reply["error"]


def test_nat64_and_translated_addresses_are_judged_by_the_ipv4_address_they_carry() -> None:
    # A DNS64 resolver's answer for a public site is no bogon; one carrying a private address is.
    assert not is_bogon("64:ff9b::808:808") and not is_bogon("::ffff:0:808:808")
    assert is_bogon("64:ff9b::7f00:1") and is_bogon("64:ff9b::c0a8:101")
    assert is_bogon("::ffff:0:7f00:1") and is_bogon("::ffff:0:a00:1")
    # The local-use prefix (RFC 8215) has no fixed place for the IPv4 address: all refused.
    assert is_bogon("64:ff9b:1::808:808")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not JSON"),
        (b"[1, 2]", "body: expected a JSON object"),
        (json.dumps({"tcp_connect": []}).encode(), "http_request: expected a URL"),
        (
            json.dumps(control_body("ftp://ok.lab.test/")).encode(),
            "http_request: only http and https",
        ),
        (json.dumps(control_body("http:///nohost")).encode(), "http_request: no host"),
        (
            json.dumps(control_body(f"http://{'a' * 64}.kz/")).encode(),
            "http_request: host 'aaaa",
        ),
        (json.dumps(control_body("http://a..b/")).encode(), "http_request: host 'a..b'"),
        (
            json.dumps(control_body("http://ok.lab.test/", ["1.2.3.4"])).encode(),
            "tcp_connect: '1.2.3.4'",
        ),
        (
            json.dumps(
                control_body("http://ok.lab.test/", [f"1.2.3.{i}:80" for i in range(17)])
            ).encode(),
            "at most 16",
        ),
        (json.dumps({"http_request": "x" * 70000}).encode(), "body: larger than 65536 bytes"),
    ],
)
async def test_bad_bodies_get_400_naming_the_field(
    helper_url: str, body: bytes, message: str
) -> None:
    status, reply = await post(helper_url, body)
    assert status == 400
    assert message in reply["error"]


async def test_it_keeps_serving_after_bad_requests(lab_info: LabInfo, helper_url: str) -> None:
    bad = [
        post(helper_url, b"\xff\xfe" * 10),
        post(helper_url, b"x" * 100_000),
        post(helper_url, control_body("http://10.1.1.1/")),
    ]
    statuses = [status for status, _ in await asyncio.gather(*bad)]
    assert statuses == [400, 400, 403]
    status, control = await post(helper_url, control_body("http://ok.lab.test/"))
    assert status == 200 and control["http_request"]["status_code"] == 200
    async with aiohttp.ClientSession() as session:
        async with session.get(helper_url + "health") as reply:
            health = await reply.json()
    assert health["status"] == "ok" and health["served"] >= 1


@pytest.fixture(scope="module")
def token_helper_url(lab_info: LabInfo) -> Iterator[str]:
    process, url = start_helper_process(
        *lab_helper_arguments(lab_info), env={TOKEN_ENV: "s3cret-token"}
    )
    try:
        yield url
    finally:
        stop_helper_process(process)


async def test_token_is_required_when_set(token_helper_url: str) -> None:
    body = control_body("http://ok.lab.test/")
    assert (await post(token_helper_url, body))[0] == 401
    assert (await post(token_helper_url, body, {"Authorization": "Bearer wrong"}))[0] == 401
    assert (await post(token_helper_url, body, {"Authorization": "s3cret-token"}))[0] == 401
    status, control = await post(token_helper_url, body, {"Authorization": "Bearer s3cret-token"})
    assert status == 200 and control["http_request"]["status_code"] == 200


# ---------------------------------------------------------------- in-process: no lab needed


@pytest.fixture
async def redirecting_site() -> AsyncIterator[tuple[str, list[str]]]:
    """A 'public' site on 127.0.0.2 that redirects into loopback, and a secret on 127.0.0.1."""
    secret_hits: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        secret_hits.append(request.path)
        return web.Response(text="internal")

    secret_server = TestServer(web.Application(), host="127.0.0.1")
    secret_server.app.router.add_get("/secret", secret)
    await secret_server.start_server()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{secret_server.port}/secret")

    public = web.Application()
    public.router.add_get("/", redirect)
    public_server = TestServer(public, host="127.0.0.2")
    await public_server.start_server()
    yield f"http://127.0.0.2:{public_server.port}/", secret_hits
    await public_server.close()
    await secret_server.close()


async def serve_helper(settings: HelperSettings) -> TestServer:
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    return server


async def ask_helper_about(site: web.Application, *, userinfo: str = "") -> tuple[int, dict]:
    """Serves `site` on 127.0.0.2, which a fresh helper counts as public, and asks the helper
    about its home page."""
    site_server = TestServer(site, host="127.0.0.2")
    await site_server.start_server()
    server = await serve_helper(HelperSettings(public_ranges=("127.0.0.2/32",)))
    try:
        return await post(str(server.make_url("/")),
                          control_body(f"http://{userinfo}127.0.0.2:{site_server.port}/"))
    finally:
        await server.close()
        await site_server.close()


async def test_redirects_into_refused_ranges_are_not_followed(
    redirecting_site: tuple[str, list[str]],
) -> None:
    url, secret_hits = redirecting_site
    server = await serve_helper(HelperSettings(public_ranges=("127.0.0.2/32",)))
    try:
        status, control = await post(str(server.make_url("/")), control_body(url))
    finally:
        await server.close()
    assert status == 200
    assert control["tcp_connect"][url.removeprefix("http://").rstrip("/")]["status"] is True
    assert control["http_request"]["failure"] == "host_unreachable"
    assert secret_hits == []


async def test_allow_private_serves_loopback(redirecting_site: tuple[str, list[str]]) -> None:
    url, secret_hits = redirecting_site
    server = await serve_helper(HelperSettings(allow_private=True))
    try:
        status, control = await post(str(server.make_url("/")), control_body(url))
    finally:
        await server.close()
    assert status == 200 and control["http_request"]["status_code"] == 200
    assert secret_hits == ["/secret"]
    assert control["ip_info"]["127.0.0.2"]["flags"] & 4 == 0


async def test_saturated_helper_answers_503() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="slow")

    site = web.Application()
    site.router.add_get("/", slow)
    site_server = TestServer(site, host="127.0.0.2")
    await site_server.start_server()
    server = await serve_helper(
        HelperSettings(
            public_ranges=("127.0.0.2/32",), max_concurrency=1, max_queue=0, http_timeout=20
        )
    )
    helper = str(server.make_url("/"))
    try:
        first = asyncio.ensure_future(
            post(helper, control_body(f"http://127.0.0.2:{site_server.port}/"))
        )
        await asyncio.wait_for(started.wait(), 20)
        status, reply = await post(
            helper, control_body(f"http://127.0.0.2:{site_server.port}/other")
        )
        assert status == 503 and "saturated" in reply["error"]
        release.set()
        assert (await first)[0] == 200
    finally:
        release.set()
        await server.close()
        await site_server.close()


async def test_cache_shares_one_computation() -> None:
    calls = []

    async def compute() -> int:
        calls.append(1)
        await asyncio.sleep(0.01)
        return 42

    cache = TTLCache(ttl=30, size=4)
    assert await asyncio.gather(*(cache.get("k", compute) for _ in range(5))) == [42] * 5
    assert len(calls) == 1
    expired = TTLCache(ttl=0, size=4)
    await expired.get("k", compute)
    await expired.get("k", compute)
    assert len(calls) == 3


def test_forwarded_headers_are_limited() -> None:
    request = parse_control_request(
        {
            "http_request": "https://a.example/",
            "http_request_headers": {"cookie": ["x"], "user-agent": ["UA"]},
        },
        16,
    )
    assert request.headers["User-Agent"] == "UA" and "cookie" not in {
        k.lower() for k in request.headers
    }
    assert (request.host, request.port, request.scheme) == ("a.example", 443, "https")
    with pytest.raises(RequestRefused, match="tcp_connect: '1.2.3.4:99999' has no valid port"):
        parse_control_request(
            {"http_request": "http://a.example/", "tcp_connect": ["1.2.3.4:99999"]}, 16
        )


def test_cli_rejects_a_bad_listen_address_in_one_line() -> None:
    result = subprocess.run(
        [BLOCKMON, "helper", "--listen", "nowhere"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "--listen" in result.stderr and "'nowhere'" in result.stderr


def test_every_helper_option_is_documented() -> None:
    from pathlib import Path

    from monitor.commands.helper import helper

    text = (Path(__file__).parent.parent / "docs" / "control-protocol.md").read_text(
        encoding="utf-8"
    )
    options = [name for param in helper.params for name in param.opts if name.startswith("--")]
    assert options and [o for o in options if o not in text] == []


async def test_a_page_arriving_in_pieces_is_read_whole() -> None:
    # The helper once kept only the first piece that had arrived: an honest page larger than
    # one network read looked truncated, and the analysis saw a body-length difference.
    piece = b"<p>" + b"x" * 65533

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(4):
            await response.write(piece)
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    site = web.Application()
    site.router.add_get("/", streamed)
    status, control = await ask_helper_about(site)
    assert status == 200, control
    assert control["http_request"]["body_length"] == 4 * len(piece)
    assert control["x_blockmon"]["body_is_truncated"] is False
    assert control["x_blockmon"]["body_sha256"] == hashlib.sha256(piece * 4).hexdigest()


@pytest.mark.parametrize(
    "location", ["http://[::1/", "http://127.0.0.2:99999/", "http://127.0.0.2:x/", "http://a..b/"]
)
async def test_a_redirect_to_a_malformed_url_is_a_failed_fetch(location: str) -> None:
    # A Location that does not parse once made the helper answer 500 (ValueError) or
    # unknown_failure; the probe records the same hop as http_invalid_response.
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    site = web.Application()
    site.router.add_get("/", redirect)
    status, control = await ask_helper_about(site)
    assert status == 200, control
    assert control["http_request"]["failure"] == "http_invalid_response"


async def test_url_userinfo_is_not_sent_as_credentials() -> None:
    # The probe's GET carries no credentials from the URL; the helper's must not either (aiohttp
    # turns userinfo into Basic auth), or the two sides fetch different pages.
    seen: list[str | None] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.path == "/":
            raise web.HTTPFound("http://again:secret@" + request.host + "/next")
        return web.Response(text="<title>ok</title>", content_type="text/html")

    site = web.Application()
    site.router.add_get("/", page)
    site.router.add_get("/next", page)
    status, control = await ask_helper_about(site, userinfo="user:pw@")
    assert status == 200 and control["http_request"]["status_code"] == 200, control
    assert seen == [None, None]


async def test_a_page_compressed_against_the_request_is_read_raw_like_the_probe() -> None:
    # Some servers gzip whatever the Accept-Encoding; the probe's h11 client reads the raw bytes,
    # so the control must too, or every such page differs in length, title and hash.
    page = b"<html><title>Compressed anyway</title>" + b"<p>news</p>" * 500 + b"</html>"
    compressed = gzip.compress(page)

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=compressed,
            headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
        )

    site = web.Application()
    site.router.add_get("/", gzipped)
    status, control = await ask_helper_about(site)
    assert status == 200, control
    assert control["http_request"]["body_length"] == len(compressed)


@pytest.mark.parametrize("command", ["helper", "measure"])
def test_cli_rejects_a_ca_file_that_is_no_pem_bundle_in_one_line(tmp_path, command: str) -> None:
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    arguments = ["--listen", "127.0.0.1:0"] if command == "helper" else ["https://ok.lab.test/"]
    result = subprocess.run(
        [BLOCKMON, command, "--ca-file", str(not_pem), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--ca-file" in result.stderr and str(not_pem) in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


async def test_a_request_body_arriving_in_pieces_is_read_whole() -> None:
    # The body was read with one content.read(n), which returns only what has arrived: a control
    # request split over two TCP segments was answered 400 "not JSON".
    server = await serve_helper(HelperSettings())
    body = json.dumps(control_body("http://10.1.1.1/", ["10.1.1.1:80"])).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: helper\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:20]
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body[20:])
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    finally:
        await server.close()
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"refused range" in reply


async def test_a_redirect_in_raw_utf8_reaches_the_same_page_as_the_probe() -> None:
    # Many servers send a Cyrillic Location unescaped; the probe reads it as UTF-8, as browsers do.
    async def page(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(status=302, headers={"Location": "/новости?q=а б"})
        assert request.query_string == "q=а б"
        return web.Response(text="<title>Жаңалықтар</title>", content_type="text/html")

    site = web.Application()
    site.router.add_get("/", page)
    site.router.add_get("/новости", page)
    status, control = await ask_helper_about(site)
    assert status == 200, control
    assert control["http_request"]["status_code"] == 200, control["http_request"]
    assert control["http_request"]["title"] == "Жаңалықтар"
