"""The intermittent state: a k-of-n record in the state machine, one incident and one alert."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.evaluate import EvaluationConfig, evaluate_alerts
from monitor.alerts.incidents import Affected, AlertEvent, Incident
from monitor.alerts.messages import build_payload
from monitor.service.runner import Runner, RunnerConfig, StoreRecorder
from monitor.state import Observation, decide_next_state, is_flapping, record_verdict
from probes.options import ProbeOptions

_START = datetime(2026, 12, 1, tzinfo=UTC)


def _verdict(index: int, anomaly: bool) -> Observation:
    at = (_START + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Observation(
        vantage_id="kz-1", url="https://flaky.example/", uid=f"u{index}", measured_at=at,
        blocking="http-failure" if anomaly else False, accessible=not anomaly,
        blocking_method="tls.reset" if anomaly else None, target_id="flaky")


def _run(pattern: str, confirmations_needed: int = 2) -> tuple[list[str], list[tuple[str, str]]]:
    current, states, transitions = None, [], []
    for index, mark in enumerate(pattern):
        decision = decide_next_state(current, _verdict(index, mark == "x"),
                                     confirmations_needed=confirmations_needed)
        current = decision.new_state_row
        states.append(current["state"])
        if decision.transition:
            transitions.append((decision.transition["from_state"], decision.transition["to_state"]))
    return states, transitions


def test_flapping_verdicts_make_one_intermittent_state_with_its_share_and_method() -> None:
    states, transitions = _run("xoxoxoxoxoxo")
    assert states[3:] == ["intermittent"] * 9
    into = [index for index, (_, to) in enumerate(transitions) if to == "intermittent"]
    assert into == [len(transitions) - 1]  # entered once, and never left
    current = None
    for index, mark in enumerate("xoxoxo"):
        current = decide_next_state(current, _verdict(index, mark == "x"), confirmations_needed=2).new_state_row
    assert current["recent"] == "xoxoxo" and current["method"] == "tls.reset"


@pytest.mark.parametrize(("pattern", "final"), [
    ("xxxxxx", "blocked"),        # a steady block
    ("xxxxoo", "accessible"),     # a block that ended once is a lift, not flapping
    ("ooooxx", "blocked"),        # a block that began once
    ("oooooo", "accessible"),
])
def test_a_block_that_begins_or_ends_once_is_not_intermittent(pattern: str, final: str) -> None:
    states, _ = _run(pattern)
    assert "intermittent" not in states and states[-1] == final


def test_intermittent_ends_when_the_record_settles() -> None:
    states, _ = _run("xoxoxo" + "xxxx")
    assert states[-1] == "blocked" and states[5] == "intermittent"
    states, _ = _run("xoxoxo" + "oooo")
    assert states[-1] == "accessible"
    assert not is_flapping(record_verdict("xxxxx", _verdict(0, False)))


def test_an_intermittent_alert_carries_share_and_method() -> None:
    where = Affected(vantage_id="kz-1", probe_asn="AS9198", since="2026-12-01T00:00:00Z",
                     url="https://flaky.example/", method="tls.reset", share=0.5)
    incident = Incident(key="intermittent:flaky", kind="intermittent", status="open",
                        opened_at=where.since, affected=(where,), target_id="flaky")
    payload = build_payload(AlertEvent("intermittent", incident, where.since, (where,)),
                            target={"name": "Flaky"}, dashboard_url=None)
    assert payload["where"][0]["share"] == 0.5
    assert payload["summary"].startswith("Flaky is blocked intermittently at kz-1 (AS9198) by tls.reset in 50%")


async def test_a_flapping_target_in_the_lab_yields_one_incident_and_at_most_two_alerts(
        lab_info, helper_url, writer_store, store_path) -> None:
    """Six rounds against flaky-reset.lab.test (every other connection reset, for real)."""
    from monitor.settings import load_settings
    from targets.registry import load_registry
    from tests.fixtures.runner import write_lab_config, write_lab_registry

    registry = write_lab_registry(store_path.parent.parent / "registry.toml", "lab", {
        "flaky": ["https://flaky-reset.lab.test/"], "honest": ["https://ok.lab.test/"]})
    config = write_lab_config(store_path.parent.parent, lab_info, registry, "lab", helper_url=helper_url)
    settings = load_settings(config, environ={})
    store, call = writer_store
    runner = Runner(settings, StoreRecorder(store, call, vantage_id="local"), load_registry(registry),
                    settings.probe.to_probe_options(),
                    config=RunnerConfig(confirm_retests=1, confirm_delay_seconds=0.0))
    new_alerts = []
    for round_number in range(6):
        await runner.run_round("lab")
        await runner.wait_for_confirmations()
        now = _START + timedelta(hours=round_number)
        new_alerts += await call(evaluate_alerts, store, EvaluationConfig(), now)
    with sqlite3.connect(store_path) as database:
        database.row_factory = sqlite3.Row
        verdicts = [row["blocking"] for row in database.execute(
            "SELECT blocking FROM measurements WHERE url = 'https://flaky-reset.lab.test/' ORDER BY measured_at")]
        state = database.execute("SELECT * FROM target_state WHERE url = 'https://flaky-reset.lab.test/'").fetchone()
        incidents = [dict(row) for row in database.execute("SELECT kind, target_id, status, affected FROM incidents")]
        alerts = [row["kind"] for row in database.execute("SELECT kind FROM alerts ORDER BY id")]
    # Real resets on half the connections: both verdicts were seen, more than once each.
    assert verdicts.count("http-failure") >= 2 and verdicts.count("false") >= 2, verdicts
    assert state["state"] == "intermittent" and state["method"] == "tls.reset"
    assert [(i["kind"], i["target_id"], i["status"]) for i in incidents] == [("intermittent", "flaky", "open")]
    assert json.loads(incidents[0]["affected"])[0]["share"] == pytest.approx(0.5, abs=0.17)
    assert alerts == ["intermittent"] and len(new_alerts) <= 2


async def test_repeats_give_a_k_of_n_record_in_one_round(writer_store, store_path) -> None:
    from targets.registry import check_registry_text
    from tests.fixtures.runner import ScriptedProbe, make_target_list

    listed = make_target_list("news", {"flaky.example": 1})
    target_list = dataclasses.replace(listed, targets=(dataclasses.replace(listed.targets[0], repeats=4),))
    url = "https://flaky.example/0"
    probe = ScriptedProbe({url: ["tls.reset", "ok", "tls.reset", "ok"]})
    store, call = writer_store
    runner = Runner(None, StoreRecorder(store, call, vantage_id="local"), target_list,  # type: ignore[arg-type]
                    ProbeOptions(), measure=probe,
                    config=RunnerConfig(confirm_retests=2, confirm_delay_seconds=0.0, per_host_limit=1))
    await runner.run_round("news")
    assert probe.calls.count(url) >= 4
    with sqlite3.connect(store_path) as database:
        state, recent = database.execute("SELECT state, recent FROM target_state").fetchone()
    assert (state, recent[:4]) == ("intermittent", "xoxo")
    _, problems = check_registry_text('[list]\nname = "t"\n[[target]]\nid = "a"\nname = "A"\n'
                                      'category_code = "NEWS"\nnotes = "n"\nrepeats = 0\n', "t.toml")
    assert len(problems) == 1 and "repeats must be a whole number from 1 to 10" in str(problems[0])
