"""Finding 9 (issue 15): one measurement readable in the terminal (`blockmon show`) and on the
dashboard (/measurements/<uid>), and alerts link to that page; finding 8's `None@` retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from monitor.alerts.messages import evidence_url
from monitor.cli import cli
from monitor.settings import load_settings
from monitor.store import open_store
from reports.dashboard import build_dashboard_app
from reports.dashboard.evidence import compare_observations
from tests.fixtures.store import synthetic_measurement

CA = "CN=Security Certificate,C=KZ"
CA_NAME = "Security Certificate (KZ interception intermediate)"


def mitm_measurement() -> dict[str, Any]:
    """A TLS interception as the probe records it, with SNI retries, one without SNI."""
    document = synthetic_measurement(url="https://www.facebook.com/", blocking="http-failure",
                                     accessible=False, blocking_method="tls.mitm",
                                     target_id="facebook", body="")
    keys = document["test_keys"]
    keys["tls_handshakes"] = [
        {"address": "127.0.0.9:443", "server_name": "www.facebook.com",
         "failure": "ssl_unknown_authority",
         "certificate_chain": [
             {"subject": "CN=www.facebook.com", "issuer": CA, "sha256": "aa" * 32},
             {"subject": CA, "issuer": "CN=Qaznet Trust Network,C=KZ", "sha256": "bb" * 32}]},
        {"address": "127.0.0.9:443", "server_name": None, "failure": None,
         "certificate_chain": [{"subject": "CN=default", "issuer": "CN=lab"}]}]
    keys["sni_differential"] = [
        {"address": "127.0.0.9:443", "server_name": "example.org", "failure": None},
        {"address": "127.0.0.9:443", "server_name": None, "failure": None}]
    keys["sni_filtering"] = True
    keys["fingerprint"] = {"id": "kz.security_certificate", "kind": "interception_ca",
                           "name": CA_NAME, "issuer": CA,
                           "evidence": f"certificate #0 issuer {CA}"}
    keys["x_analysis_notes"] = [f"tls: ssl_unknown_authority; issuer {CA}; known interception "
                                "CA kz.security_certificate (by issuer)"]
    keys["requests"] = []
    return document


def blockpage_measurement() -> dict[str, Any]:
    body = "<html><title>Доступ ограничен</title><h1>Доступ к ресурсу ограничен</h1></html>"
    document = synthetic_measurement(url="http://www.eurasianet.org/", blocking="http-diff",
                                     accessible=False, blocking_method="http.blockpage",
                                     target_id="eurasianet", body=body,
                                     fingerprint_id="kz.phrase")
    document["test_keys"]["x_analysis_notes"] = ["http: body contains 'Доступ к ресурсу'"]
    return document


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    store = open_store(load_settings(path, environ={}).storage.database_url)
    mitm, blockpage = mitm_measurement(), blockpage_measurement()
    store.save_measurement(mitm, target_id="facebook")
    store.save_measurement(blockpage, target_id="eurasianet")
    store.close()
    return path, mitm, blockpage


def test_show_prints_verdict_why_chain_and_retries(config: Any) -> None:
    path, mitm, blockpage = config
    result = CliRunner().invoke(cli, ["--config", str(path), "show", mitm["measurement_uid"]])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "verdict   blocked (tls.mitm)" in text
    assert "known interception CA kz.security_certificate" in text  # the rule, in words
    assert f"#0 CN=www.facebook.com  issued by {CA}  <- issued by the interception CA " \
           f"{CA_NAME}" in text
    assert f"interception CA: {CA_NAME}" in text
    assert "(no SNI) at 127.0.0.9:443: handshake ok" in text
    assert "None" not in text
    page = CliRunner().invoke(cli, ["--config", str(path), "show", blockpage["measurement_uid"]])
    assert "Доступ к ресурсу ограничен" in page.output  # the body excerpt
    assert "sha256 " in page.output and "Fingerprint: kz.phrase" in page.output
    missing = CliRunner().invoke(cli, ["--config", str(path), "show", "20990101T000000Z_x"])
    assert missing.exit_code == 1 and "no measurement '20990101T000000Z_x'" in missing.output


def test_a_tls_retry_without_sni_is_not_printed_as_none() -> None:
    tls = next(pair for pair in compare_observations(mitm_measurement()) if pair.step == "TLS")
    assert "None@" not in tls.probe and "(no SNI)@127.0.0.9:443" in tls.probe


async def test_measurement_page_and_alert_link(config: Any) -> None:
    path, mitm, _ = config
    settings = load_settings(path, environ={})
    app = build_dashboard_app(lambda: open_store(settings.storage.database_url, migrate=False),
                              settings)
    async with TestClient(TestServer(app)) as client:
        uid = mitm["measurement_uid"]
        link = evidence_url("https://dash.example.org/", uid)
        assert link == f"https://dash.example.org/measurements/{uid}"
        response = await client.get(f"/measurements/{uid}")
        assert response.status == 200
        html = await response.text()
        assert "blocked (tls.mitm)" in html and f"<b>{CA_NAME}</b>" in html
        assert "issued by the interception CA" in html and "(no SNI)" in html
        assert 'id="side-by-side"' in html and "ssl_unknown_authority" in html
        assert (await client.get("/measurements/20990101T000000Z_none")).status == 404
        assert (await client.get("/measurements/..%2Fetc")).status in (400, 404)


async def test_a_report_read_on_the_dashboard_links_the_measurement_pages(config: Any,
                                                                           tmp_path: Path) -> None:
    # Finding 9: reports link to the readable page (the file itself keeps its evidence/ links).
    from reports.periods import parse_period
    from reports.write import generate_report

    path, mitm, _ = config
    settings = load_settings(path, environ={"BLOCKMON_REPORTS_OUT_DIR": str(tmp_path / "r")})
    store = open_store(settings.storage.database_url)
    try:
        generate_report(store, parse_period("2026-11"), tmp_path / "r", ("html",))
    finally:
        store.close()
    uid = mitm["measurement_uid"]
    assert f'href="evidence/{uid}.json"' in (tmp_path / "r" / "2026-11" / "report.html").read_text(
        encoding="utf-8")
    app = build_dashboard_app(lambda: open_store(settings.storage.database_url, migrate=False),
                              settings)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/reports/2026-11/report.html")
        html = await response.text()
        assert f'href="/measurements/{uid}"' in html and "evidence/" not in html.split(
            "<main>")[1].split("Measured sites are shown")[0]
        assert "style-src 'unsafe-inline'" in response.headers["Content-Security-Policy"]
        assert (await client.get(f"/measurements/{uid}")).status == 200
