"""The collector decides states only from the measurements it stored in the request (issue 16, 8)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.collector.intake import save_and_decide
from monitor.state import StateDecision
from monitor.store import Store
from monitor.store.rows import measurement_row
from tests.fixtures.collector import (
    CollectorProcess,
    http_json,
    register_probe,
    sample_measurement,
)
from tests.fixtures.store import synthetic_measurement

ACCESSIBLE = {"blocking": False, "accessible": True, "blocking_method": None,
              "control_failure": None, "queries": [], "requests": []}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CollectorProcess]:
    if request.param == "postgres":
        database = str(request.getfixturevalue("postgres_url"))
    else:
        database = f"sqlite:///{tmp_path / 'collector.db'}"
    process = CollectorProcess(database=database, workdir=tmp_path)
    process.start()
    yield process
    process.stop()


def rows(collector: CollectorProcess, query: str) -> list[tuple[Any, ...]]:
    if collector.database.startswith("sqlite:///"):
        with sqlite3.connect(collector.database.removeprefix("sqlite:///")) as connection:
            return connection.execute(query).fetchall()
    import psycopg  # the optional driver: only the postgres param gets here

    with psycopg.connect(collector.database) as connection:
        return [tuple(row) for row in connection.execute(query).fetchall()]


def states_and_transitions(collector: CollectorProcess, vantage_id: str) -> tuple[list[Any], list[Any]]:
    states = rows(collector, "SELECT url, state, method, streak, last_uid, last_measured_at "
                             f"FROM target_state WHERE vantage_id = '{vantage_id}' ORDER BY url")
    transitions = rows(collector, "SELECT url, from_state, to_state, measurement_uid "
                                  f"FROM state_transitions WHERE vantage_id = '{vantage_id}' "
                                  "ORDER BY id")
    return states, transitions


def submit(collector: CollectorProcess, token: str, batch: list[dict[str, Any]]) -> tuple[int, Any]:
    return http_json("POST", f"{collector.url}/api/v1/measurements", {"measurements": batch},
                     token=token)


def minutes_ago(n: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=n)


def as_sent_by(measurement: dict[str, Any], vantage_id: str, **changes: Any) -> dict[str, Any]:
    annotations = {**measurement["annotations"], "vantage_id": vantage_id}
    return {**measurement, "annotations": annotations, **changes}


def test_another_probes_uid_gives_the_sender_no_state(collector: CollectorProcess) -> None:
    victim = register_probe(collector, "kz-owner")
    sender = register_probe(collector, "kz-copier")
    original = sample_measurement(1, vantage_id="kz-owner", started=minutes_ago(9))
    assert submit(collector, victim, [original])[1]["stored"] == 1
    before = states_and_transitions(collector, "kz-owner")
    stored_before = rows(collector, "SELECT uid, vantage_id, url, json FROM measurements")

    status, body = submit(collector, sender, [as_sent_by(original, "kz-copier")])
    assert (status, body) == (200, {"received": 1, "stored": 0, "duplicates": 1})
    assert states_and_transitions(collector, "kz-copier") == ([], [])
    assert states_and_transitions(collector, "kz-owner") == before
    assert rows(collector, "SELECT uid, vantage_id, url, json FROM measurements") == stored_before


def test_a_resent_uid_with_another_url_makes_no_state_for_it(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-moved")
    original = sample_measurement(2, vantage_id="kz-moved", started=minutes_ago(8))
    assert submit(collector, token, [original])[1]["stored"] == 1
    before = states_and_transitions(collector, "kz-moved")
    moved = {**original, "input": "https://www.rferl.org/"}
    assert submit(collector, token, [moved]) == (
        200, {"received": 1, "stored": 0, "duplicates": 1})
    assert states_and_transitions(collector, "kz-moved") == before
    assert rows(collector, "SELECT COUNT(*) FROM target_state "
                           "WHERE url = 'https://www.rferl.org/'") == [(0,)]


def test_three_resent_uids_cannot_forge_a_confirmed_block(collector: CollectorProcess) -> None:
    owner = register_probe(collector, "kz-open")
    forger = register_probe(collector, "kz-forger")
    # The owner's network reaches the page; the forger re-labels those uids as blocked for itself.
    # One clock reading for both batches: the uid depends on the start time.
    starts = [minutes_ago(7 - n) for n in range(3)]
    honest = [{**sample_measurement(10 + n, vantage_id="kz-open", started=starts[n]),
               "test_keys": ACCESSIBLE} for n in range(3)]
    assert submit(collector, owner, honest)[1]["stored"] == 3
    owner_before = states_and_transitions(collector, "kz-open")
    forged = [as_sent_by(sample_measurement(10 + n, vantage_id="kz-open",
                                            started=starts[n]), "kz-forger")
              for n in range(3)]
    assert [m["measurement_uid"] for m in forged] == [m["measurement_uid"] for m in honest]
    assert submit(collector, forger, forged) == (
        200, {"received": 3, "stored": 0, "duplicates": 3})
    assert states_and_transitions(collector, "kz-forger") == ([], [])
    assert rows(collector, "SELECT COUNT(*) FROM target_state WHERE state = 'blocked'") == [(0,)]
    assert states_and_transitions(collector, "kz-open") == owner_before


def test_an_honest_resend_is_answered_ok_and_counts_nothing_twice(
    collector: CollectorProcess,
) -> None:
    token = register_probe(collector, "kz-resend")
    # A scheduled run and its re-test within one second: the same measured_at, two uids.
    same_second = minutes_ago(6)
    batch = [sample_measurement(20 + n, vantage_id="kz-resend", started=same_second)
             for n in range(2)]
    assert submit(collector, token, batch) == (200, {"received": 2, "stored": 2, "duplicates": 0})
    before = states_and_transitions(collector, "kz-resend")
    assert [(state, streak) for _url, state, _method, streak, *_ in before[0]] == [("anomaly", 2)]
    # The answer was lost: the probe sends the same batch again, then once more with a new one.
    assert submit(collector, token, batch) == (200, {"received": 2, "stored": 0, "duplicates": 2})
    assert states_and_transitions(collector, "kz-resend") == before
    later = sample_measurement(22, vantage_id="kz-resend", started=minutes_ago(5))
    assert submit(collector, token, [*batch, later]) == (
        200, {"received": 3, "stored": 1, "duplicates": 2})
    states, transitions = states_and_transitions(collector, "kz-resend")
    assert [(state, streak) for _url, state, _method, streak, *_ in states] == [("blocked", 3)]
    assert [(to_state, uid) for _url, _from, to_state, uid in transitions] == [
        ("anomaly", batch[0]["measurement_uid"]), ("blocked", later["measurement_uid"])]
    assert rows(collector, "SELECT COUNT(*) FROM measurements "
                           "WHERE vantage_id = 'kz-resend'") == [(3,)]


def test_the_store_decides_only_new_rows_and_keeps_both_or_neither(store: Store) -> None:
    rows_sent = [measurement_row(synthetic_measurement(blocking="dns", accessible=False,
                                                       blocking_method="dns.nxdomain"),
                                 target_id="azattyq", run_id=None, confirmation=0)
                 for _ in range(2)]
    assert save_and_decide(store, rows_sent[:1], confirmations_needed=3) == 1

    decided: list[str] = []

    def refuse_after_noting(current: dict[str, Any] | None, row: dict[str, Any]) -> StateDecision:
        decided.append(row["uid"])
        raise RuntimeError("the collector died mid-batch")

    with pytest.raises(RuntimeError):
        store.save_measurements_with_states(rows_sent, refuse_after_noting)
    # Only the new uid reached the state machine, and its failed decision took its row with it.
    assert decided == [rows_sent[1]["uid"]]
    assert store.load_measurement(rows_sent[1]["uid"]) is None
    assert save_and_decide(store, rows_sent, confirmations_needed=3) == 1
    state = store.load_state("kz-almaty-1", "https://www.azattyq.org/")
    assert state is not None and (state["state"], state["streak"]) == ("anomaly", 2)
