"""Finding 1 (issue 15): a URL in two lists keeps its block under both, counted once.

The briefing's azattyq and the kz list's azattyq-org share https://www.azattyq.org/. Its block
is confirmed through the kz list's round (the list measured last); status, history, the
dashboard and the report must still show it under the briefing, and count the URL once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result

from monitor.alerts.evaluate import evaluate_alerts
from monitor.alerts.service import evaluation_config
from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.settings import load_settings
from monitor.store import open_store
from reports.dashboard import build_dashboard_app
from tests.fixtures.two_lists import AZATTYQ


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_status_shows_the_block_under_both_lists(two_lists_config: Path) -> None:
    for list_name, target in (("briefing", "azattyq"), ("kz", "azattyq-org")):
        result = invoke(two_lists_config, "status", "--list", list_name, "--state", "blocked",
                        "--format", "json")
        assert result.exit_code == 0, result.output
        [row] = json.loads(result.stdout)["states"]
        assert (row["url"], row["target_id"], row["list_name"]) == (AZATTYQ, target, list_name)
        assert row["lists"] == ["briefing", "kz"]
        # The one rule for "since": the first anomaly of the confirmed streak (finding 11).
        assert row["since"] == "2026-12-01T08:20:00Z"
    everything = json.loads(invoke(two_lists_config, "status", "--format", "json").stdout)
    assert [row["url"] for row in everything["states"]].count(AZATTYQ) == 1
    assert everything["summary"] == {"blocked": 1, "accessible": 2}


def test_history_of_either_target_shows_the_block(two_lists_config: Path) -> None:
    for target in ("azattyq", "azattyq-org"):
        result = invoke(two_lists_config, "history", target, "--format", "json")
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert [t["to_state"] for t in document["transitions"]] == [
            "accessible", "anomaly", "blocked"]
        assert len(document["measurements"]) == 4


async def test_dashboard_filters_by_list_membership(two_lists_config: Path) -> None:
    settings = load_settings(two_lists_config, environ={})
    app = build_dashboard_app(lambda: open_store(settings.storage.database_url, migrate=False),
                              settings)
    async with TestClient(TestServer(app)) as client:
        data = await (await client.get("/api/v1/states?list=briefing&state=blocked")).json()
        assert [(row["url"], row["target_id"]) for row in data["states"]] == [
            (AZATTYQ, "azattyq")]
        assert data["count"] == 1
        page = await (await client.get("/?list=briefing&state=blocked")).text()
        assert AZATTYQ in page
        target_page = await (await client.get("/targets/azattyq")).text()
        assert "dns.nxdomain" in target_page
        target = await (await client.get("/api/v1/targets/azattyq")).json()
        assert [row["blocking_method"] for row in target["recent_measurements"]] == [
            "dns.nxdomain"] * 3 + [None]  # the kz round's measurements of its URL too
        assert sum(cell["blocked"] for cell in target["timeline"][0]["days"]) == 3


def _report(config: Path, tmp_path: Path, *lists: str) -> dict[str, Any]:
    args = ["report", "--period", "2026-12", "--format", "json", "--out", str(tmp_path / "r")]
    for name in lists:
        args += ["--list", name]
    result = invoke(config, *args)
    assert result.exit_code == 0, result.output
    [path] = [line for line in result.stdout.splitlines() if line.endswith("report.json")]
    return json.loads(Path(path).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_report_of_each_list_shows_the_block_and_counts_the_url_once(two_lists_config: Path,
                                                                     tmp_path: Path) -> None:
    briefing = _report(two_lists_config, tmp_path, "briefing")
    assert briefing["summary"]["blocked_targets"] == ["azattyq"]
    assert briefing["summary"]["blocked_urls"] == [AZATTYQ]
    assert briefing["lists"] == ["briefing"]
    assert {finding["target_id"] for finding in briefing["others"]} == {"azattyq", "vk"}
    kz = _report(two_lists_config, tmp_path, "kz")
    assert kz["summary"]["blocked_targets"] == ["azattyq-org"]
    both = _report(two_lists_config, tmp_path)
    # Two targets (one per list) hold the URL: both are blocked, the URL is counted once.
    assert sorted(both["summary"]["blocked_targets"]) == ["azattyq", "azattyq-org"]
    assert both["summary"]["blocked_urls"] == [AZATTYQ]
    assert both["summary"]["urls_total"] == 3
    assert (tmp_path / "r" / "2026-12--briefing" / "report.json").is_file()


def test_report_of_an_unknown_list_names_the_known_ones(two_lists_config: Path, tmp_path: Path) -> None:
    result = invoke(two_lists_config, "report", "--period", "2026-12", "--list", "nolist",
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert "no list 'nolist' (known: briefing, kz)" in result.stderr


async def test_one_rule_for_since_in_alerts_status_dashboard_and_report(
        two_lists_config: Path, tmp_path: Path) -> None:
    # Finding 11: the alert said "since" the first anomaly, the report the confirmation.
    first_anomaly = "2026-12-01T08:20:00Z"  # confirmed at 08:20:20
    settings = load_settings(two_lists_config, environ={})
    store = open_store(settings.storage.database_url, migration_sets=PROBE_DATABASE)
    try:
        evaluate_alerts(store, evaluation_config(settings, {}, frozenset()),
                        datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
        [payload] = [json.loads(row["payload"]) for row in store.database.rows(
            "SELECT payload FROM alerts WHERE kind = 'block_confirmed'")]
    finally:
        store.close()
    assert [where["since"] for where in payload["where"]] == [first_anomaly]
    status = json.loads(invoke(two_lists_config, "status", "--format", "json").stdout)
    assert status["states"][0]["since"] == first_anomaly
    app = build_dashboard_app(lambda: open_store(settings.storage.database_url, migrate=False),
                              settings)
    async with TestClient(TestServer(app)) as client:
        data = await (await client.get("/api/v1/states?state=blocked")).json()
        assert data["states"][0]["since"] == first_anomaly
    report = _report(two_lists_config, tmp_path, "briefing")
    assert report["summary"]["blocked_since"] == [["azattyq", "kz-almaty-1", first_anomaly]]
    [place] = report["summary"]["blocked_where"]
    assert place["since"] == first_anomaly
