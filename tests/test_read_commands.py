"""`blockmon init`, `status`, `history` and `export` through click's runner on a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.settings import load_settings
from monitor.state import Observation, decide_next_state
from monitor.store import open_store
from monitor.store.rows import measurement_row
from tests.fixtures.store import synthetic_measurement

AZATTYQ = "https://www.azattyq.org/"
TODAY = "https://today.kz/"
GOOGLE = "https://www.google.com/"


def record(store: Any, measurement: dict[str, Any], target_id: str, confirmation: int = 0) -> None:
    """What the runner does with each measurement."""
    store.save_measurement(measurement, target_id=target_id, confirmation=confirmation)
    row = measurement_row(measurement, target_id=target_id, run_id=None,
                          confirmation=confirmation)
    current = store.load_state(row["vantage_id"], row["url"])
    decision = decide_next_state(current, Observation.from_row(row), confirmations_needed=3)
    store.save_state(decision.new_state_row, decision.transition)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file whose store holds: azattyq blocked (DNS), today.kz an unconfirmed
    anomaly, google accessible."""
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                    '[collector]\nurl = "http://127.0.0.1:9/"\n', encoding="utf-8")
    store = open_store(load_settings(path, environ={}).storage.database_url, spool=True)
    store.save_targets([
        {"id": "azattyq", "name": "Radio Azattyq", "category_code": "NEWS",
         "list_name": "briefing", "urls": [AZATTYQ]},
        {"id": "today", "name": "today.kz", "category_code": "NEWS", "list_name": "briefing",
         "urls": [TODAY]},
        {"id": "google", "name": "Google", "category_code": "SRCH", "list_name": "controls",
         "urls": [GOOGLE]},
    ])
    dns = {"blocking": "dns", "accessible": False, "blocking_method": "dns.nxdomain"}
    for second in range(3):
        record(store, synthetic_measurement(url=AZATTYQ, measured_at=f"2026-11-20 10:00:0{second}",
                                            **dns), "azattyq", confirmation=second)
    record(store, synthetic_measurement(url=AZATTYQ, measured_at="2026-11-21 10:00:00", **dns),
           "azattyq")
    record(store, synthetic_measurement(url=TODAY, measured_at="2026-11-21 10:00:01",
                                        blocking="tcp_ip", accessible=False,
                                        blocking_method="tcp.reset"), "today")
    record(store, synthetic_measurement(url=GOOGLE, measured_at="2026-11-22 10:00:00",
                                        list_name="controls"), "google")
    store.close()
    return path


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_init_writes_a_loadable_file_and_keeps_an_existing_one(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "blockmon.toml"
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--path", str(target)])
    assert first.exit_code == 0, first.output
    assert load_settings(target, environ={}).probe.concurrency == 20
    target.write_text("# mine\n")
    second = runner.invoke(cli, ["init", "--path", str(target)])
    assert second.exit_code == 1
    assert "exists; use --force" in second.output
    assert target.read_text() == "# mine\n"
    forced = runner.invoke(cli, ["init", "--path", str(target), "--force"])
    assert forced.exit_code == 0
    assert "[probe]" in target.read_text()


def test_status_lists_blocked_first_with_since_and_the_spool(config: Path) -> None:
    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["STATE", "METHOD", "SINCE", "VANTAGE", "TARGET", "LISTS", "URL"]
    assert lines[1].split() == ["blocked", "dns.nxdomain", "2026-11-20T10:00:00Z",
                                "kz-almaty-1", "azattyq", "briefing", AZATTYQ]
    assert lines[2].split()[0] == "anomaly"
    assert lines[3].split()[0] == "accessible"
    assert "3 URLs: 1 blocked, 1 anomaly, 1 accessible" in result.output
    assert "spool: 6 measurements waiting for upload to http://127.0.0.1:9/" in result.output


@pytest.mark.parametrize(("args", "expected_urls"), [
    (["--state", "blocked"], [AZATTYQ]),
    (["--list", "briefing"], [AZATTYQ, TODAY]),
    (["--category", "SRCH"], [GOOGLE]),
    (["--vantage", "elsewhere"], []),
])
def test_status_filters(config: Path, args: list[str], expected_urls: list[str]) -> None:
    result = invoke(config, "status", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [row["url"] for row in document["states"]] == expected_urls
    assert document["spool_backlog"] == 6


def test_status_refuses_an_unknown_state(config: Path) -> None:
    result = invoke(config, "status", "--state", "censored")
    assert result.exit_code == 2
    assert "'censored' is not one of" in result.output


def test_status_without_a_database_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "none.db"}"\n')
    result = invoke(path, "status")
    assert result.exit_code == 1
    assert f"no database at {tmp_path / 'none.db'}" in result.output
    assert not (tmp_path / "none.db").exists()


def test_a_bad_settings_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "blockmon.toml"
    path.write_text("[probe]\nconcurrency = -1\n")
    result = invoke(path, "status")
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {path}: [probe] concurrency: must be greater "
                                     "than 0 (got -1)")


def test_history_of_a_target_shows_its_changes_and_measurements(config: Path) -> None:
    result = invoke(config, "history", "azattyq", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "(first seen) -> anomaly (dns.nxdomain)" in result.output
    assert "2026-11-20T10:00:02Z  kz-almaty-1  anomaly -> blocked (dns.nxdomain)" in result.output
    measurement_lines = [line for line in result.output.splitlines() if "blocking=" in line]
    assert len(measurement_lines) == 2
    assert measurement_lines[0].split()[0] == "2026-11-21T10:00:00Z"  # newest first
    assert "re-test 2" in measurement_lines[1]


def test_history_by_url_as_json(config: Path) -> None:
    result = invoke(config, "history", TODAY, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [t["to_state"] for t in document["transitions"]] == ["anomaly"]
    assert [m["blocking_method"] for m in document["measurements"]] == ["tcp.reset"]


def test_history_of_something_never_measured_is_an_error(config: Path) -> None:
    result = invoke(config, "history", "https://nowhere.example/")
    assert result.exit_code == 1
    assert "nothing stored for URL 'https://nowhere.example/'" in result.output


def test_export_writes_ooni_json_lines_in_the_window(config: Path, tmp_path: Path) -> None:
    result = invoke(config, "export", "--since", "2026-11-21", "--until", "2026-11-22")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    measurements = [json.loads(line) for line in lines]
    assert [m["input"] for m in measurements] == [AZATTYQ, TODAY]
    assert all(m["test_name"] == "web_connectivity" for m in measurements)
    assert "exported 2 measurements" in result.stderr

    out = tmp_path / "all.jsonl"
    to_file = invoke(config, "export", "--since", "2026-01-01", "-o", str(out))
    assert to_file.exit_code == 0, to_file.output
    assert len(out.read_text().splitlines()) == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "not a date or time: 'yesterday'"),
    (["--since", "2026-11-22", "--until", "2026-11-21"], "is not after --since"),
    ([], "Missing option '--since'"),
])
def test_export_refuses_bad_dates(config: Path, args: list[str], message: str) -> None:
    result = invoke(config, "export", *args)
    assert result.exit_code == 2
    assert message in result.output
