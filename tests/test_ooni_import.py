"""`blockmon ooni import`: OONI's files re-judged into the store, once per uid, bad lines named."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result

from monitor.alerts.service import AlertService
from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.settings import load_settings
from monitor.store import Store, open_store
from reports.dashboard import build_dashboard_app
from tests.conftest import SHARED
from tests.fixtures.alerts import WebhookReceiver
from tests.fixtures.store import synthetic_measurement

OONI_REAL = SHARED / "data" / "ooni-real"
REAL = OONI_REAL / "measurements.jsonl"
SYNTHETIC = OONI_REAL / "synthetic-netem" / "measurements.jsonl"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    if not REAL.exists():
        pytest.skip(f"{REAL} is absent (the shared data sits beside the checkout)")
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "bm.db"}"\n', encoding="utf-8")
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "ooni", "import", *args])


def rows(config: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(config.parent / "bm.db")
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_real_and_synthetic_import_once_and_only_once(config):
    first = run(config, str(REAL), str(SYNTHETIC))
    assert first.exit_code == 0, first.output
    assert "74 measurements read: 74 stored, 0 already stored, 0 skipped, 0 bad lines" in first.output
    second = run(config, str(REAL), str(SYNTHETIC))
    assert "74 measurements read: 0 stored, 74 already stored" in second.output
    assert rows(config, "SELECT COUNT(*) FROM measurements") == [(74,)]
    # The Trustpositif redirect OONI's probe missed: blockmon's verdict, OONI's kept beside.
    (uid, vantage, method, fingerprint, network, raw), = rows(config, (
        "SELECT uid, vantage_id, blocking_method, fingerprint_id, probe_network_name, json "
        "FROM measurements WHERE url = 'http://archive.org'"))
    # This file's copy has no measurement_uid: a stable one is made from its content.
    assert uid.startswith("ooni_") and len(uid) == 37
    assert (vantage, method, fingerprint) == ("ooni:ID:AS23693", "http.blockpage", "id.trustpositif")
    assert network
    stored = json.loads(raw)
    assert stored["test_keys"]["x_ooni_verdict"]["blocking"] is False
    assert stored["annotations"]["x_source"] == "ooni"
    # Measured targets are matched (facebook by URL) and move their network's state.
    assert rows(config, "SELECT vantage_id, target_id, state, method FROM target_state "
                        "WHERE url = 'https://www.facebook.com/'") == [
        ("ooni:IR:AS197207", "facebook", "anomaly", "dns.blockpage")]


def test_a_directory_of_gzip_files_imports(config, tmp_path):
    folder = tmp_path / "oonidata" / "KZ" / "2024-01-01"
    folder.mkdir(parents=True)
    lines = REAL.read_bytes().splitlines(keepends=True)
    (folder / "part-1.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[:12])))
    (folder / "part-2.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[12:])))
    (folder / "README.txt").write_text("not a measurement file", encoding="utf-8")
    result = run(config, str(tmp_path / "oonidata"))
    assert result.exit_code == 0, result.output
    assert "24 measurements read: 24 stored" in result.output
    again = run(config, str(REAL))
    assert "24 measurements read: 0 stored, 24 already stored" in again.output


def test_a_bad_line_is_one_error_naming_file_and_line_and_the_rest_imports(config, tmp_path):
    lines = REAL.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], '{"measurement_uid": "x", truncated', lines[1], "[1, 2]",
                                 lines[2]]) + "\n", encoding="utf-8")
    result = run(config, str(broken))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith(str(broken))]
    assert errors == [f"{broken}:2: not JSON (Expecting property name enclosed in double quotes at column 26)",
                      f"{broken}:4: not a measurement (a JSON list)"]
    assert "3 measurements read: 3 stored, 0 already stored, 0 skipped, 2 bad lines" in result.output


def test_other_tests_are_skipped_with_a_reason(config, tmp_path):
    other = tmp_path / "ndt.jsonl"
    other.write_text(json.dumps({"test_name": "ndt", "input": None}) + "\n", encoding="utf-8")
    result = run(config, str(other))
    assert result.exit_code == 0
    assert f"{other}:1: skipped: test 'ndt' is not web_connectivity" in result.output


def test_nothing_to_import_is_a_usage_error(config):
    result = run(config)
    assert result.exit_code == 2
    assert "name files or directories to import, or --api" in result.output


@pytest.mark.parametrize(("ooni_section", "alerted"),
                         [("", False), ("[ooni]\nalerts = false\n", False),
                          ("[ooni]\nalerts = true\n", True)])
async def test_alerts_on_imported_networks_are_opt_in_from_settings_to_the_webhook(
        config, tmp_path, webhook_receiver: WebhookReceiver, ooni_section: str, alerted: bool):
    # One anomaly confirms a block: the IR network's facebook measurement becomes `blocked`.
    config.write_text(
        config.read_text() + "[schedule]\nconfirm_retests = 0\n"
        f'[alerts]\nenabled = true\nwebhook_url = "{webhook_receiver.url}"\n'
        f'webhook_secret = "{webhook_receiver.secret}"\n' + ooni_section, encoding="utf-8")
    # Only line 5 (IR's DNS block of facebook): with the network's other, failing measurements
    # the rules would call it an outage instead.
    facebook_line = tmp_path / "ir-facebook.jsonl"
    facebook_line.write_text(REAL.read_text(encoding="utf-8").splitlines()[4] + "\n",
                             encoding="utf-8")
    assert run(config, str(facebook_line)).exit_code == 0
    assert rows(config, "SELECT vantage_id, state FROM target_state WHERE target_id = 'facebook'"
                ) == [("ooni:IR:AS197207", "blocked")]
    settings = load_settings(config, environ={})
    store = open_store(settings.storage.database_url, migration_sets=PROBE_DATABASE)

    async def in_store(work: Callable[[Store], Any]) -> Any:
        return work(store)

    try:
        service = AlertService.from_settings(settings, in_store)
        report = await service.tick()
    finally:
        store.close()
    received = [message["body"] for message in webhook_receiver.received]
    if not alerted:
        assert service.new_alert_ids == [] and received == []
        return
    assert service.new_alert_ids and report.sent.get("webhook", 0) >= 1
    [alert] = received
    assert (alert["kind"], alert["target"]["id"]) == ("block_confirmed", "facebook")
    assert [(where["vantage_id"], where["method"]) for where in alert["where"]] == [
        ("ooni:IR:AS197207", "dns.blockpage")]


def test_a_report_over_imported_and_own_measurements_names_each_source(config, tmp_path):
    own = synthetic_measurement(url="https://www.facebook.com/", measured_at="2022-08-20 10:00:00",
                                target_id="facebook", vantage_id="kz-almaty-1")
    store = open_store(f"sqlite:///{config.parent / 'bm.db'}", migration_sets=PROBE_DATABASE)
    try:
        store.save_measurement(own, target_id="facebook")
    finally:
        store.close()
    assert run(config, str(REAL)).exit_code == 0
    out = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--period", "2022-08",
                                      "--format", "md", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = next(out.rglob("*.md")).read_text(encoding="utf-8")
    facebook = text[text.index("facebook"):]
    assert "ooni:IR:AS197207 (OONI, AS197207" in facebook and ", 1 measurements)" in facebook
    assert "kz-almaty-1 (blockmon, 1 measurements)" in facebook
    # The claim's explanation: what blockmon's own probe saw, then OONI's network by ASN and name.
    explanation = next(line for line in facebook.splitlines() if "blocked per OONI" in line)
    assert "kz-almaty-1" in explanation
    assert ("https://www.facebook.com/ blocked per OONI measurements in AS197207 "
            "(Mobile Communication Company of Iran PLC) by DNS") in explanation
    assert "ooni:IR:" not in explanation


async def test_the_dashboard_labels_imported_networks(config, tmp_path):
    assert run(config, str(REAL)).exit_code == 0
    url = f"sqlite:///{config.parent / 'bm.db'}"
    settings = load_settings(str(config))
    app = build_dashboard_app(lambda: open_store(url, migrate=False), settings)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/targets/facebook")).text()
        overview = await (await client.get("/")).text()
    assert "ooni:IR:AS197207 <span class=\"small\">(OONI measurements)</span>" in page
    assert "ooni:IR:AS197207 <span class=\"small\">(OONI)</span>" in overview
