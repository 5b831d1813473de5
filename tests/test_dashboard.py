"""The dashboard over the known histories: filters, target page, JSON API, token-guarded action."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.alerts.messages import evidence_url
from monitor.settings import load_settings
from monitor.store import open_store
from reports.dashboard import add_dashboard_routes, build_dashboard_app
from reports.dashboard.evidence import compare_observations
from tests.fixtures.reports import ALMATY, MITM_ISSUER, HistoryStore, measurement_document
from tests.test_report_render import parse_strictly

TOKEN = "operator-secret-token"


def dashboard_settings(history_store: HistoryStore, out_dir: Path, token: str | None):  # type: ignore[no-untyped-def]
    environ = {"BLOCKMON_STORAGE_DATABASE": history_store.url,
               "BLOCKMON_REPORTS_OUT_DIR": str(out_dir)}
    if token:
        environ["BLOCKMON_REPORTS_OPERATOR_TOKEN"] = token
    return load_settings(None, environ=environ)


@pytest.fixture
async def client(history_store: HistoryStore, tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = dashboard_settings(history_store, tmp_path / "reports", TOKEN)
    app = build_dashboard_app(lambda: open_store(history_store.url, migrate=False), settings)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_states_api_filters(client: TestClient) -> None:
    everything = await (await client.get("/api/v1/states")).json()
    assert everything["count"] == 10  # 5 measured URLs x 2 vantages
    response = await client.get("/api/v1/states", params={"state": "blocked", "asn": "AS9198"})
    data = await response.json()
    assert [(row["url"], row["method"]) for row in data["states"]] == [
        ("https://blocked.example/", "tls.mitm")]
    by_category = await (await client.get("/api/v1/states?category=POLR")).json()
    assert {row["target_id"] for row in by_category["states"]} == {"openpaper"}
    by_method = await (await client.get("/api/v1/states?method=http.blockpage")).json()
    assert [row["vantage_id"] for row in by_method["states"]] == ["kz-beeline-1"]
    by_list = await (await client.get("/api/v1/states?list=briefing&state=down")).json()
    assert by_list["count"] == 4


async def test_states_come_in_pages(client: TestClient) -> None:
    # A collector with many probes has vantages x URLs rows: one request must not take them all.
    first = await (await client.get("/api/v1/states", params={"limit": "3"})).json()
    assert (first["count"], first["limit"], first["offset"], len(first["states"])) == (10, 3, 0, 3)
    last = await (await client.get("/api/v1/states?limit=3&offset=9")).json()
    assert [row["url"] for row in last["states"]] != [row["url"] for row in first["states"]]
    assert (last["count"], len(last["states"])) == (10, 1)
    everything = await (await client.get("/api/v1/states")).json()
    assert len(everything["states"]) == 10 and everything["limit"] == 500
    for query in ("limit=0", "limit=5001", "limit=x", "offset=-1"):
        response = await client.get(f"/api/v1/states?{query}")
        assert response.status == 400
        assert (await response.json())["error"].startswith(query.split("=")[0] + " ")
    page = await client.get("/", params={"limit": "4", "offset": "4", "state": ""})
    html = await page.text()
    assert len(re.findall(r'<tr data-state="', html)) == 4
    assert "Rows 5 to 8 of 10" in html
    assert 'href="/?limit=4&amp;offset=8"' in html and 'href="/?limit=4&amp;offset=0"' in html
    assert (await client.get("/?limit=nope")).status == 400


async def test_overview_page_filters_rows(client: TestClient) -> None:
    response = await client.get("/", params={"state": "accessible"})
    assert response.status == 200
    html = await response.text()
    parse_strictly(html)
    rows = re.findall(r'<tr data-state="([a-z]+)">', html)
    assert rows and set(rows) == {"accessible"}
    assert "https://open.example/" in html and "https://blocked.example/" not in html
    assert '<option value="AS21299">' in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


async def test_target_page_shows_claim_timeline_and_evidence(client: TestClient) -> None:
    response = await client.get("/targets/blockednews")
    assert response.status == 200
    html = await response.text()
    parse_strictly(html)
    assert "Blocked News was blocked" in html  # the briefing quote
    assert html.count("<svg") == 4  # a timeline per (URL, vantage)
    assert "Probe saw" in html and "Control saw" in html
    assert MITM_ISSUER in html  # the probe's TLS handshake, next to the control's
    assert "ssl_unknown_authority" in html
    assert (await client.get("/targets/no-such-target")).status == 404


async def test_target_and_measurement_api(client: TestClient) -> None:
    data = await (await client.get("/api/v1/targets/lifted")).json()
    assert data["target"]["briefing"]["quote"] == "Lifted Daily was blocked"
    states = {row["vantage_id"]: row["state"] for row in data["states"]}
    assert states == {"kz-almaty-1": "accessible", "kz-beeline-1": "accessible"}
    uid = data["recent_measurements"][0]["uid"]
    measurement = await (await client.get(f"/api/v1/measurements/{uid}")).json()
    assert measurement["measurement_uid"] == uid and measurement["input"].startswith("https://")
    assert (await client.get("/api/v1/measurements/20990101T000000Z_none")).status == 404
    assert (await client.get("/api/v1/measurements/..%2Fetc")).status in (400, 404)
    assert (await client.get("/api/v1/targets/nothing")).status == 404


async def test_an_alerts_evidence_link_opens_on_the_dashboard(client: TestClient) -> None:
    states = (await (await client.get("/api/v1/states")).json())["states"]
    uid = states[0]["last_uid"]
    link = evidence_url(str(client.make_url("/")), uid)
    assert link is not None and link.startswith(str(client.make_url("/")))
    response = await client.get(link.removeprefix(str(client.make_url("")).rstrip("/")))
    assert response.status == 200
    assert uid in await response.text()  # the readable page (tests/test_measurement_view.py)


async def test_a_target_page_reads_a_bounded_number_of_documents(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each state's evidence is a stored JSON (up to megabytes): a target measured by hundreds
    # of probes must not load hundreds of them per page view.
    from reports.dashboard import routes

    monkeypatch.setattr(routes, "LATEST_EVIDENCE", 1)
    data = await (await client.get("/api/v1/targets/lifted")).json()
    assert len(data["states"]) == 2 and len(data["latest_evidence"]) == 1
    assert data["latest_evidence"][0]["observations"]
    page = await (await client.get("/targets/lifted")).text()
    assert page.count('class="side-by-side"') == 1 and "1 of 2" in page


async def test_generating_a_report_needs_the_operator_token(client: TestClient) -> None:
    body = {"period": "2026-11", "formats": ["json"]}
    refused = await client.post("/api/v1/reports", json=body)
    assert refused.status == 401
    wrong = await client.post("/api/v1/reports", json=body,
                              headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status == 401
    assert (await (await client.get("/api/v1/reports")).json())["reports"] == []

    accepted = await client.post("/api/v1/reports", json=body,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status == 201
    written = await accepted.json()
    assert written["label"] == "2026-11" and "2026-11/report.json" in written["files"]
    (listed,) = (await (await client.get("/api/v1/reports")).json())["reports"]
    assert listed["formats"] == ["json"]
    report = await client.get(listed["files"]["json"])
    assert (await report.json())["summary"]["blocked_targets"] == ["blockednews"]
    archive = await (await client.get("/reports")).text()
    assert "2026-11" in archive
    assert (await client.get("/reports/2026-11/..%2F..%2Fetc%2Fpasswd")).status == 404

    bad = await client.post("/api/v1/reports", json={"period": "someday"},
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status == 400 and "someday" in (await bad.json())["error"]


async def test_an_unwritable_archive_is_one_error_line(history_store: HistoryStore,
                                                      tmp_path: Path) -> None:
    occupied = tmp_path / "reports"
    occupied.write_text("a file where the archive should be", encoding="utf-8")
    settings = dashboard_settings(history_store, occupied, TOKEN)
    app = build_dashboard_app(lambda: open_store(history_store.url, migrate=False), settings)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.post("/api/v1/reports", json={"period": "2026-11"},
                                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 500
        error = (await response.json())["error"]
        assert error.startswith("cannot write the report: ") and str(occupied) in error


async def test_actions_are_refused_when_no_token_is_set(history_store: HistoryStore,
                                                        tmp_path: Path) -> None:
    settings = dashboard_settings(history_store, tmp_path, None)
    app = build_dashboard_app(lambda: open_store(history_store.url, migrate=False), settings)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.post("/api/v1/reports", json={"period": "2026-11"},
                                          headers={"Authorization": "Bearer anything"})
        assert response.status == 403


async def test_mounts_under_a_prefix_beside_other_routes(history_store: HistoryStore,
                                                         tmp_path: Path) -> None:
    app = web.Application()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/api/v1/health", health)
    add_dashboard_routes(app, lambda: open_store(history_store.url, migrate=False),
                         dashboard_settings(history_store, tmp_path, None), prefix="/dashboard")
    async with TestClient(TestServer(app)) as test_client:
        assert (await (await test_client.get("/api/v1/health")).json()) == {"ok": True}
        page = await (await test_client.get("/dashboard/")).text()
        assert 'href="/dashboard/static/dashboard.css"' in page
        assert 'href="/dashboard/targets/blockednews"' in page
        assert (await test_client.get("/dashboard/static/dashboard.js")).status == 200
        states = await (await test_client.get("/dashboard/api/v1/states")).json()
        assert states["count"] == 10


def test_side_by_side_observations() -> None:
    document = measurement_document("https://blocked.example/", "blockednews", ALMATY,
                                    datetime(2026, 11, 2, tzinfo=UTC))
    pairs = {pair.step: pair for pair in compare_observations(document)}
    assert MITM_ISSUER in pairs["TLS"].probe and "ssl_unknown_authority" in pairs["TLS"].probe
    assert pairs["TLS"].control == "site@192.0.2.10:443: ok"
    assert pairs["DNS"].control == "192.0.2.10"
    assert pairs["HTTP"].control == "status 200, 5120 bytes, title 'Home'"


# Shapes a buggy or hostile probe can upload: the collector checks the verdict columns, not
# every list inside test_keys.
MALFORMED_TEST_KEYS = {
    "queries": "x", "tcp_connect": ["x", {"ip": "192.0.2.1", "port": 443, "status": "x"}],
    "tls_handshakes": [None, {"certificate_chain": "x"}, {"certificate_chain": [7]}],
    "sni_differential": {"x": 1}, "requests": [3], "fingerprint": None,
    "control": {"dns": {"addrs": 5}, "tcp_connect": ["x"], "tls_handshake": {"a": 1},
                "http_request": "x"},
}


def test_side_by_side_survives_malformed_observations() -> None:
    pairs = {pair.step: pair for pair in compare_observations({"test_keys": MALFORMED_TEST_KEYS})}
    assert set(pairs) == {"DNS", "TCP", "TLS", "HTTP"}
    assert pairs["TCP"].probe == "192.0.2.1:443 connected"
    assert pairs["TLS"].probe == "(no SNI)@None: ok; (no SNI)@None: ok"


def test_evidence_survives_malformed_observations() -> None:
    from monitor.store.queries import extract_evidence

    detail = extract_evidence("uid-1", {"test_keys": MALFORMED_TEST_KEYS})
    assert (detail.tls_issuer, detail.fingerprint, detail.sni_differential_passed,
            detail.failures) == (None, None, False, ())
    assert extract_evidence("uid-2", {"test_keys": "x"}).tls_issuer is None


def test_serve_refuses_a_bad_listen_address_in_one_line(history_store: HistoryStore,
                                                        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "{history_store.url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--listen", "nowhere"])
    assert result.exit_code != 0
    assert result.output.strip() == ("Error: --listen 'nowhere': use HOST:PORT like "
                                     "127.0.0.1:8080")
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "none.db"}"\n',
                       encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(missing), "serve"])
    assert result.exit_code != 0 and "no database at" in result.output
    assert not (tmp_path / "none.db").exists()


async def test_the_collector_serves_the_dashboard(history_store: HistoryStore,
                                                  tmp_path: Path) -> None:
    from monitor.collector.app import CollectorConfig, build_app
    from monitor.collector.backend import DatabaseThreads
    from monitor.store.database import DatabaseUrl

    database = DatabaseUrl.parse(history_store.url)
    threads = DatabaseThreads(database)
    settings = dashboard_settings(history_store, tmp_path, None)
    from monitor.collector.backend import open_store
    from reports.dashboard import dashboard_mount

    mount = dashboard_mount(lambda: open_store(database), settings)
    app = build_app(CollectorConfig(database=database, settings=settings, mount=mount), threads)
    try:
        async with TestClient(TestServer(app)) as test_client:
            states = await (await test_client.get(
                "/dashboard/api/v1/states", params={"state": "blocked"})).json()
            assert {row["method"] for row in states["states"]} == {"tls.mitm", "http.blockpage"}
            page = await test_client.get("/dashboard/targets/lifted")
            assert page.status == 200 and "Lifted Daily was blocked" in await page.text()
    finally:
        threads.close()
