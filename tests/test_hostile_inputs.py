"""Hostile requests (findings 6 and 11) against real loopback servers: the collector, the
control helper and `blockmon serve`. Raw HTTP over sockets so NUL, non-UTF-8 bytes and odd
numbers reach the server as sent; a property-based fuzz (hypothesis) over every route asserts
no 5xx and nothing stored on refusal."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.collector.app import CollectorConfig, build_app
from monitor.collector.backend import DatabaseThreads
from monitor.store.database import DatabaseUrl
from probes.server_limits import runner_options
from tests.fixtures.collector import sample_measurement


@dataclass
class Servers:
    collector: int
    helper: int
    dashboard: int
    database: Path
    token: str
    secret: str


def raw_request(port: int, method: str, target: bytes, body: bytes = b"",
                headers: dict[str, bytes] | None = None) -> int:
    """One HTTP/1.1 request as bytes; the status code of the answer."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close", b"Content-Length: " + str(len(body)).encode()]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def stored(servers: Servers) -> int:
    with sqlite3.connect(servers.database, timeout=30) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The three servers on one event loop in a thread, as their commands build them."""
    from monitor.commands.serve import build_serve_app
    from monitor.settings import load_settings
    from probes.helper.app import build_app as build_helper_app
    from probes.helper.settings import HelperSettings

    directory = tmp_path_factory.mktemp("hostile")
    database_path = directory / "collector.db"
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    found: dict[str, Any] = {}

    async def main() -> None:
        database = DatabaseThreads(DatabaseUrl.parse(str(database_path)))
        database.migrate()
        found["secret"] = await database.run(
            lambda _store, registry: registry.create_enrolment_secret(now=datetime.now(UTC),
                                                                       uses=1000))
        config_file = directory / "blockmon.toml"
        config_file.write_text(f'[storage]\ndatabase = "sqlite:///{database_path}"\n')
        apps = {"collector": build_app(CollectorConfig(database=database.url), database),
                "helper": build_helper_app(HelperSettings()),
                "dashboard": build_serve_app(load_settings(config_file, environ={}))}
        runners = []
        for name, app in apps.items():
            runner = web.AppRunner(app, **runner_options('%t "%r" %s'))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            found[name] = runner.addresses[0][1]
            runners.append(runner)
        ready.set()
        await stop.wait()
        for runner in runners:
            await runner.cleanup()
        database.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    status_body = register(found["collector"], found["secret"], "kz-almaty-1")
    yield Servers(found["collector"], found["helper"], found["dashboard"], database_path,
                  status_body, found["secret"])
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


def register(port: int, secret: str, vantage: str) -> str:
    body = json.dumps({"enrolment_secret": secret, "vantage_id": vantage, "probe_cc": "KZ",
                       "probe_asn": "AS9198"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return str(json.loads(answer.split(b"\r\n\r\n", 1)[1])["token"])


def measurement_with(**changes: Any) -> bytes:
    """A valid upload body whose measurement has `changes` (a JSON text fragment per key)."""
    item = sample_measurement(7)
    text = json.dumps({"measurements": [item]})
    for key, raw in changes.items():
        text = text.replace(json.dumps(key) + ": " + json.dumps(item.get(key)),
                            json.dumps(key) + ": " + raw, 1)
    return text.encode()


def upload(servers: Servers, body: bytes, token: bytes | None = None) -> int:
    return raw_request(servers.collector, "POST", b"/api/v1/measurements", body,
                       {"Authorization": b"Bearer " + (token or servers.token.encode()),
                        "Content-Type": b"application/json"})


NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", str(2**70), str(10**400), "9" * 5000]


@pytest.mark.parametrize("number", NUMBERS, ids=["nan", "inf", "-inf", "1e400", "2**70",
                                                 "10**400", "5000-digits"])
def test_numbers_out_of_range_are_400_and_nothing_is_stored(servers: Servers,
                                                            number: str) -> None:
    before = stored(servers)
    assert upload(servers, measurement_with(test_runtime=number)) == 400
    body = json.loads(measurement_with())
    body["measurements"][0]["annotations"]["confirmation"] = 0
    text = json.dumps(body).replace('"confirmation": 0', f'"confirmation": {number}')
    assert upload(servers, text.encode()) == 400
    assert stored(servers) == before


@pytest.mark.parametrize("field", ["measurement_uid", "probe_cc"])
def test_a_trailing_newline_in_an_identifier_is_refused(servers: Servers, field: str) -> None:
    item = sample_measurement(8)
    assert upload(servers, json.dumps({"measurements": [
        {**item, field: item[field] + "\n"}]}).encode()) == 400
    status = raw_request(servers.collector, "POST", b"/api/v1/register", json.dumps({
        "enrolment_secret": servers.secret, "vantage_id": "kz-new\n"}).encode())
    assert status == 400


def test_odd_text_is_4xx_not_5xx(servers: Servers) -> None:
    before = stored(servers)
    assert upload(servers, measurement_with(input='"http://"')) == 400
    assert upload(servers, measurement_with(), token="bmp_caf\xe9".encode("latin-1")) == 401
    for version in ('"a\\u0000b"', '"\\ud800"'):
        body = b'{"software_version": ' + version.encode() + b"}"
        assert raw_request(servers.collector, "POST", b"/api/v1/check-in", body,
                           {"Authorization": b"Bearer " + servers.token.encode()}) == 400
        register_body = (b'{"enrolment_secret": "x", "vantage_id": "kz-2", '
                         b'"probe_network_name": ' + version.encode() + b"}")
        assert raw_request(servers.collector, "POST", b"/api/v1/register", register_body) == 400
    assert stored(servers) == before


ROUTES = {
    "collector": [("POST", b"/api/v1/register"), ("POST", b"/api/v1/check-in"),
                  ("POST", b"/api/v1/measurements"), ("GET", b"/api/v1/health"),
                  ("GET", b"/metrics")],
    "helper": [("POST", b"/"), ("POST", b"/api/v1/control"), ("GET", b"/health")],
    "dashboard": [("GET", b"/"), ("GET", b"/targets/x"), ("GET", b"/reports"),
                  ("GET", b"/api/v1/states"), ("GET", b"/api/v1/targets/x"),
                  ("GET", b"/api/v1/measurements/x"), ("GET", b"/api/v1/reports"),
                  ("POST", b"/api/v1/reports"), ("GET", b"/metrics"), ("GET", b"/static/x")],
}
ALL_ROUTES = [(server, method, path) for server, routes in ROUTES.items()
              for method, path in routes]

numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([2**63, 2**70, -(2**64), 10**30]))
text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children,
                                                                      max_size=4),
    max_leaves=12)
fields = st.sampled_from(["measurements", "enrolment_secret", "vantage_id", "probe_cc",
                          "software_version", "targets_version", "url", "http_request",
                          "tcp_connect", "label", "test_runtime", "annotations"])
bodies = st.one_of(
    st.dictionaries(fields, json_values, max_size=5).map(
        lambda body: json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")),
    st.binary(max_size=64))
suffixes = st.binary(max_size=12).map(
    lambda raw: b"".join(bytes([b]) if 0x21 <= b <= 0x7E and b not in b"#? " else
                         b"%%%02X" % b for b in raw))
queries = st.binary(max_size=12).map(
    lambda raw: b"".join(b"%%%02X" % b for b in raw))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ALL_ROUTES), body=bodies, suffix=suffixes, query=queries,
       authorized=st.booleans())
def test_fuzz_every_route_no_5xx_and_nothing_stored_on_refusal(
        servers: Servers, route: tuple[str, str, bytes], body: bytes, suffix: bytes,
        query: bytes, authorized: bool) -> None:
    server, method, path = route
    port = getattr(servers, server)
    target = path + (suffix if path.endswith(b"/x") else b"") + b"?q=" + query
    headers = {"Content-Type": b"application/json"}
    if authorized:
        headers["Authorization"] = b"Bearer " + servers.token.encode()
    before = stored(servers)
    status = raw_request(port, method, target, body if method == "POST" else b"", headers)
    assert status < 500, (server, method, target, body[:200])
    if status >= 400:
        assert stored(servers) == before


def test_the_access_log_keeps_neither_query_tokens_nor_addresses(
        servers: Servers, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        raw_request(servers.collector, "GET", b"/api/v1/health?token=bmp_SECRET123")
        # A malformed request: aiohttp logs "Error handling request from <address>".
        with socket.create_connection(("127.0.0.1", servers.collector), timeout=10) as sock:
            sock.sendall(b"GET /\x01 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            sock.recv(4096)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/v1/health" in text
    assert "bmp_SECRET123" not in text
    assert "127.0.0.1" not in text


async def test_idle_and_half_sent_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5: idle connections, and ones that never finish their headers, do not stay."""
    import probes.server_limits
    from probes.helper.app import build_app as build_helper_app
    from probes.helper.settings import HelperSettings

    monkeypatch.setattr(probes.server_limits, "KEEPALIVE_SECONDS", 1.0)
    runner = web.AppRunner(build_helper_app(HelperSettings()), **runner_options(None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    half = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    for sock in half:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    try:
        await asyncio.sleep(3)

        def closed(sock: socket.socket) -> bool:
            sock.setblocking(False)
            try:
                return sock.recv(100) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True

        assert sum(map(closed, idle)) == 50 and sum(map(closed, half)) == 50
    finally:
        for sock in idle + half:
            sock.close()
        await runner.cleanup()
