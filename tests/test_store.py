"""The Store protocol's behaviour, run against every backend through the `store` fixture."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from monitor.state import Observation, decide_next_state
from monitor.store import Store
from monitor.store.migrations import LATEST_VERSION
from monitor.store.rows import measurement_row
from tests.fixtures.store import synthetic_measurement


def _state_row(url: str = "https://www.azattyq.org/", **changes: Any) -> dict[str, Any]:
    row = {"vantage_id": "kz-almaty-1", "url": url, "target_id": "azattyq",
           "list_name": "briefing", "state": "blocked", "method": "dns.nxdomain",
           "since": "2026-11-25T18:00:00Z", "last_change": "2026-11-25T18:01:00Z",
           "last_measured_at": "2026-11-25T18:01:00Z", "last_uid": None,
           "probe_asn": "AS9198", "probe_cc": "KZ", "streak": 3}
    row.update(changes)
    return row


def _transition(url: str = "https://www.azattyq.org/", **changes: Any) -> dict[str, Any]:
    row = {"vantage_id": "kz-almaty-1", "url": url, "target_id": "azattyq",
           "from_state": "anomaly", "to_state": "blocked", "from_method": "dns.nxdomain",
           "method": "dns.nxdomain", "at": "2026-11-25T18:01:00Z", "measurement_uid": None}
    row.update(changes)
    return row


def test_migrate_reaches_the_latest_version_and_is_idempotent(store: Store) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == LATEST_VERSION


def test_a_measurement_is_stored_once_and_read_back_whole(store: Store) -> None:
    measurement = synthetic_measurement(blocking="dns", accessible=False,
                                        blocking_method="dns.nxdomain")
    assert store.save_measurement(measurement, target_id="azattyq") is True
    assert store.save_measurement(measurement, target_id="azattyq") is False
    assert store.load_measurement(measurement["measurement_uid"]) == measurement
    assert store.load_measurement("no-such-uid") is None
    assert store.count_measurements() == 1


def test_measurement_columns_carry_the_verdict(store: Store) -> None:
    measurement = synthetic_measurement(blocking="http-diff", accessible=False,
                                        blocking_method="http.blockpage",
                                        fingerprint_id="kz-blockpage-1",
                                        measured_at="2026-11-25 18:01:02",
                                        control_failure=None)
    run_id = store.start_run("briefing", "kz-almaty-1")
    store.save_measurement(measurement, target_id="other-id", run_id=run_id, confirmation=2)
    [row] = list(store.iter_measurements())
    assert row["uid"] == measurement["measurement_uid"]
    assert row["target_id"] == "other-id"  # the keyword wins over the annotation
    assert row["run_id"] == run_id
    assert row["measured_at"] == "2026-11-25T18:01:02Z"
    assert (row["blocking"], row["accessible"], row["anomaly"]) == ("http-diff", 0, 1)
    assert row["blocking_method"] == "http.blockpage"
    assert row["fingerprint_id"] == "kz-blockpage-1"
    assert row["confirmation"] == 2
    assert row["list_name"] == "briefing"
    assert (row["probe_cc"], row["probe_asn"]) == ("KZ", "AS9198")
    assert json.loads(row["json"]) == measurement


def test_false_and_null_blocking_are_kept_apart(store: Store) -> None:
    clean = synthetic_measurement(blocking=False, accessible=True,
                                  measured_at="2026-11-25 18:00:00")
    unknown = synthetic_measurement(blocking=None, accessible=None,
                                    measured_at="2026-11-25 18:00:01",
                                    control_failure="generic_timeout_error")
    store.save_measurement(clean, target_id="azattyq")
    store.save_measurement(unknown, target_id="azattyq")
    first, second = store.iter_measurements()
    assert (first["blocking"], first["accessible"], first["anomaly"]) == ("false", 1, 0)
    assert (second["blocking"], second["accessible"], second["anomaly"]) == (None, None, 0)
    assert second["control_failure"] == "generic_timeout_error"


def test_batch_save_counts_only_new_uids_and_accepts_ooni_measurements(store: Store) -> None:
    first = synthetic_measurement(measured_at="2026-11-25 18:00:00")
    second = synthetic_measurement(measured_at="2026-11-25 18:00:01")
    third = synthetic_measurement(measured_at="2026-11-25 18:00:02")
    store.save_measurement(first, target_id="azattyq")
    rows = [measurement_row(m, target_id="azattyq", run_id=None, confirmation=0)
            for m in (first, second)]
    assert store.save_measurements(rows) == 1
    # A collector hands over whole measurements; the target comes from the annotations.
    assert store.save_measurements([third, second]) == 1
    assert store.count_measurements() == 3
    assert [row["target_id"] for row in store.iter_measurements()] == ["azattyq"] * 3


def test_a_failing_batch_stores_nothing(store: Store) -> None:
    good = measurement_row(synthetic_measurement(), target_id="a", run_id=None, confirmation=0)
    broken = dict(good, uid="another-uid", url=None)  # url is NOT NULL
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        store.save_measurements([good, broken])
    assert store.count_measurements() == 0


def test_iter_measurements_filters_and_orders(store: Store) -> None:
    saved = []
    for minute, (url, vantage) in enumerate([
        ("https://www.azattyq.org/", "kz-almaty-1"),
        ("https://today.kz/", "kz-almaty-1"),
        ("https://www.azattyq.org/", "kz-astana-1"),
        ("https://www.azattyq.org/", "kz-almaty-1"),
    ]):
        measurement = synthetic_measurement(url=url, vantage_id=vantage,
                                            measured_at=f"2026-11-25 18:0{minute}:00")
        store.save_measurement(measurement, target_id=url.split("/")[2])
        saved.append(measurement["measurement_uid"])

    def uids(**filters: Any) -> list[str]:
        return [row["uid"] for row in store.iter_measurements(**filters)]

    assert uids() == saved
    assert uids(since="2026-11-25T18:01:00Z") == saved[1:]
    assert uids(until="2026-11-25T18:01:00Z") == saved[:1]  # until is exclusive
    assert uids(vantage_id="kz-astana-1") == [saved[2]]
    assert uids(url="https://www.azattyq.org/", vantage_id="kz-almaty-1") == [saved[0], saved[3]]
    assert uids(target_id="today.kz") == [saved[1]]
    assert uids(order="desc", limit=2) == [saved[3], saved[2]]
    assert store.count_measurements(since="2026-11-25", until="2026-11-25T18:02:00Z") == 2


def test_iter_measurements_pages_through_many_rows_in_order(store: Store) -> None:
    start = datetime(2026, 11, 20)
    rows = [measurement_row(synthetic_measurement(
                measured_at=f"{start + timedelta(minutes=number):%Y-%m-%d %H:%M:%S}", body=""),
                target_id="azattyq", run_id=None, confirmation=0)
            for number in range(1203)]
    assert store.save_measurements(rows) == len(rows) == 1203
    streamed = [row["uid"] for row in store.iter_measurements()]
    assert streamed == [row["uid"] for row in rows]
    newest = [row["uid"] for row in store.iter_measurements(order="desc", limit=1001)]
    assert newest == [row["uid"] for row in reversed(rows)][:1001]


def test_runs_record_start_finish_and_counts(store: Store) -> None:
    run_id = store.start_run("briefing", "kz-almaty-1")
    [running] = store.load_runs()
    assert (running["id"], running["status"], running["finished_at"]) == (run_id, "running", None)
    store.finish_run(run_id, "ok", {"measured": 12, "anomalies": 3, "errors": 0})
    [finished] = store.load_runs(vantage_id="kz-almaty-1")
    assert finished["status"] == "ok"
    assert (finished["measured"], finished["anomalies"]) == (12, 3)
    assert json.loads(finished["counts"])["errors"] == 0
    assert finished["finished_at"] is not None
    assert store.load_runs(vantage_id="elsewhere") == []
    with pytest.raises(KeyError, match="no-such-run"):
        store.finish_run("no-such-run", "ok", {})


@dataclass(frozen=True)
class _Claim:
    source: str
    quote: str


@dataclass(frozen=True)
class _Target:
    id: str
    name: str
    category_code: str
    list_name: str
    urls: tuple[str, ...] = ()
    briefing: _Claim | None = None
    notes: list[str] = field(default_factory=list)


def test_states_join_their_target_and_filter(store: Store) -> None:
    store.save_targets([
        _Target("azattyq", "Radio Azattyq", "NEWS", "briefing", ("https://www.azattyq.org/",),
                _Claim("briefing p. 3", "RFE/RL blocked")),
        {"id": "today", "name": "today.kz", "category_code": "NEWS", "list_name": "kz",
         "urls": ["https://today.kz/"]},
        {"id": "ok-site", "name": "OK", "category_code": "CTRL", "list_name": "briefing"},
    ])
    store.save_state(_state_row(), None)
    store.save_state(_state_row("https://today.kz/", target_id="today", list_name=None,
                                state="accessible", method=None), None)
    store.save_state(_state_row("https://ok.example/", target_id="ok-site", list_name=None,
                                vantage_id="kz-astana-1", state="down", method=None), None)

    def urls(**filters: Any) -> list[str]:
        return sorted(row["url"] for row in store.load_states(**filters))

    assert len(urls()) == 3
    assert urls(state="blocked") == ["https://www.azattyq.org/"]
    assert urls(category="NEWS") == ["https://today.kz/", "https://www.azattyq.org/"]
    # list from the state row, or else from its target
    assert urls(list_name="briefing") == ["https://ok.example/", "https://www.azattyq.org/"]
    assert urls(list_name="kz") == ["https://today.kz/"]
    assert urls(vantage_id="kz-astana-1") == ["https://ok.example/"]
    [blocked] = store.load_states(state="blocked")
    assert blocked["target_name"] == "Radio Azattyq"
    assert blocked["category_code"] == "NEWS"
    assert blocked["since"] == "2026-11-25T18:00:00Z"


def test_save_targets_updates_in_place(store: Store) -> None:
    store.save_targets([{"id": "azattyq", "name": "Old", "category_code": "NEWS"}])
    store.save_targets([{"id": "azattyq", "name": "Radio Azattyq", "category_code": "POLR"}])
    store.save_state(_state_row(), None)
    [state] = store.load_states()
    assert (state["target_name"], state["category_code"]) == ("Radio Azattyq", "POLR")


def test_save_state_upserts_and_appends_transitions(store: Store) -> None:
    assert store.load_state("kz-almaty-1", "https://www.azattyq.org/") is None
    store.save_state(_state_row(state="anomaly", streak=1), _transition(
        from_state=None, to_state="anomaly", at="2026-11-25T18:00:00Z"))
    store.save_state(_state_row(), _transition())
    store.save_state(_state_row(streak=4, last_measured_at="2026-11-25T19:00:00Z"), None)
    state = store.load_state("kz-almaty-1", "https://www.azattyq.org/")
    assert state is not None
    assert (state["state"], state["streak"], state["last_measured_at"]) == (
        "blocked", 4, "2026-11-25T19:00:00Z")
    transitions = store.load_transitions(url="https://www.azattyq.org/")
    assert [(t["from_state"], t["to_state"]) for t in transitions] == [
        (None, "anomaly"), ("anomaly", "blocked")]


def test_load_transitions_filters_and_reads_after_an_id(store: Store) -> None:
    store.save_state(_state_row(), _transition(at="2026-11-25T18:00:00Z"))
    store.save_state(_state_row("https://today.kz/", target_id="today"),
                     _transition("https://today.kz/", target_id="today",
                                 at="2026-11-26T18:00:00Z"))
    store.save_state(_state_row(vantage_id="kz-astana-1"),
                     _transition(vantage_id="kz-astana-1", at="2026-11-27T18:00:00Z"))
    everything = store.load_transitions()
    assert [t["at"][:10] for t in everything] == ["2026-11-25", "2026-11-26", "2026-11-27"]
    assert [t["url"] for t in store.load_transitions(target_id="today")] == ["https://today.kz/"]
    assert len(store.load_transitions(url="https://www.azattyq.org/")) == 2
    assert len(store.load_transitions(vantage_id="kz-astana-1")) == 1
    assert len(store.load_transitions(since="2026-11-26", until="2026-11-27")) == 1
    assert store.load_transitions(after_id=everything[1]["id"]) == everything[2:]


def test_spool_keeps_new_measurements_until_uploaded(store: Store) -> None:
    first = synthetic_measurement(measured_at="2026-11-25 18:00:00")
    second = synthetic_measurement(measured_at="2026-11-25 18:00:01")
    store.save_measurement(first, target_id="azattyq")
    store.save_measurement(first, target_id="azattyq")
    store.save_measurements([second])
    assert store.spool_backlog() == 2
    pending = store.spool_pending(10)
    assert {row["uid"] for row in pending} == {first["measurement_uid"],
                                                second["measurement_uid"]}
    assert all(json.loads(row["json"])["measurement_uid"] == row["uid"] for row in pending)
    assert len(store.spool_pending(1)) == 1
    assert store.mark_uploaded([first["measurement_uid"], "never-spooled"]) == 1
    assert [row["uid"] for row in store.spool_pending(10)] == [second["measurement_uid"]]
    assert store.spool_backlog() == 1


def test_prune_deletes_old_measurements_but_keeps_evidence(store: Store) -> None:
    old_plain = synthetic_measurement(measured_at="2026-10-01 12:00:00")
    old_parked = synthetic_measurement(measured_at="2026-10-01 11:00:00")
    old_pending = synthetic_measurement(measured_at="2026-10-01 10:00:00")
    old_transition = synthetic_measurement(measured_at="2026-10-01 12:00:01")
    old_current = synthetic_measurement(measured_at="2026-10-01 12:00:02",
                                        url="https://today.kz/")
    recent = synthetic_measurement(measured_at="2026-11-25 12:00:00")
    for measurement in (old_plain, old_parked, old_pending, old_transition, old_current, recent):
        store.save_measurement(measurement, target_id="azattyq")
    store.mark_uploaded([old_plain["measurement_uid"]])
    store.park_upload(old_parked["measurement_uid"], "refused for good")
    store.save_state(_state_row(last_uid=recent["measurement_uid"]),
                     _transition(measurement_uid=old_transition["measurement_uid"]))
    store.save_state(_state_row("https://today.kz/", last_uid=old_current["measurement_uid"]),
                     None)
    assert store.prune("2026-11-01") == 2
    assert store.load_measurement(old_plain["measurement_uid"]) is None
    assert store.load_measurement(old_parked["measurement_uid"]) is None
    assert store.spool_parked() == 0
    # Not uploaded yet: kept, however old, until the collector has it.
    for kept in (old_pending, old_transition, old_current, recent):
        assert store.load_measurement(kept["measurement_uid"]) == kept
    assert store.spool_backlog() == 4


def test_since_when_blocked_is_one_query_after_confirmation(store: Store) -> None:
    """The store and the state machine together, as the runner uses them."""
    times = ["2026-11-25 18:00:00", "2026-11-25 18:00:30", "2026-11-25 18:01:00"]
    kinds = []
    for confirmation, measured_at in enumerate(times):
        measurement = synthetic_measurement(blocking="dns", accessible=False,
                                            blocking_method="dns.nxdomain",
                                            measured_at=measured_at)
        store.save_measurement(measurement, target_id="azattyq", confirmation=confirmation)
        row = measurement_row(measurement, target_id="azattyq", run_id=None,
                              confirmation=confirmation)
        current = store.load_state(row["vantage_id"], row["url"])
        decision = decide_next_state(current, Observation.from_row(row), confirmations_needed=3)
        store.save_state(decision.new_state_row, decision.transition)
        kinds.append(decision.new_state_row["state"])
    assert kinds == ["anomaly", "anomaly", "blocked"]
    [blocked] = store.load_states(state="blocked")
    assert blocked["since"] == "2026-11-25T18:00:00Z"
    assert blocked["method"] == "dns.nxdomain"
    assert [t["to_state"] for t in store.load_transitions()] == ["anomaly", "blocked"]


def test_database_urls_in_errors_carry_no_password() -> None:
    from monitor.store import StoreError, open_store

    for url in ("postgresql://bm:hunter2@127.0.0.1:1/x",
                "postgresql://127.0.0.1:1/x?user=bm&password=hunter2",
                "mysql://bm:hunter2@db/x?password=hunter2"):
        with pytest.raises(StoreError) as refused:
            open_store(url)
        message = str(refused.value)
        assert "hunter2" not in message
        assert "cannot connect" in message or "use sqlite" in message
