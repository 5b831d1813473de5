"""A measurement and the state it moves are one transaction, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.service.runner import record_in_store
from monitor.state import Observation, decide_next_state
from monitor.store import Store
from targets.model import Target
from tests.fixtures.store import synthetic_measurement


def _execute(store: Store, statement: str) -> None:
    store.database.execute(statement)


def _decide(confirmations_needed: int = 3) -> Any:
    def decide(current: dict[str, Any] | None, row: dict[str, Any]) -> Any:
        return decide_next_state(current, Observation.from_row(row),
                                 confirmations_needed=confirmations_needed)
    return decide


def _target() -> Target:
    return Target(id="azattyq", name="Azattyq", category_code="NEWS", urls=(), briefing=None,
                  control=False, list_name="briefing")


def test_measurement_and_state_are_saved_together(store: Store) -> None:
    measurement = synthetic_measurement(blocking="dns", accessible=False,
                                        blocking_method="dns.nxdomain")
    outcome = store.save_measurement_with_state(
        measurement, target_id="azattyq", run_id=None, confirmation=0, decide=_decide())
    assert outcome.saved is True
    assert outcome.state_row is not None and outcome.state_row["state"] == "anomaly"
    stored = store.load_state("kz-almaty-1", "https://www.azattyq.org/")
    assert stored is not None and stored["last_uid"] == measurement["measurement_uid"]
    assert [t["to_state"] for t in store.load_transitions()] == ["anomaly"]
    assert store.spool_backlog() == 1


def test_a_resent_uid_changes_nothing_and_reports_the_current_state(store: Store) -> None:
    measurement = synthetic_measurement(blocking="dns", accessible=False,
                                        blocking_method="dns.nxdomain")
    store.save_measurement_with_state(measurement, target_id="azattyq", run_id=None,
                                      confirmation=0, decide=_decide())
    calls: list[Any] = []

    def never(current: Any, row: Any) -> Any:
        calls.append(row)
        raise AssertionError("decide must not run for a stored uid")

    again = store.save_measurement_with_state(measurement, target_id="azattyq", run_id=None,
                                              confirmation=0, decide=never)
    assert (again.saved, again.decision, calls) == (False, None, [])
    assert again.state_row is not None and again.state_row["state"] == "anomaly"
    assert len(store.load_transitions()) == 1


def test_a_failing_state_write_leaves_no_measurement_behind(store: Store) -> None:
    """What a kill -9 between the two writes used to leave: a measurement whose state was never
    moved. Now the state write failing rolls the measurement back too."""
    _execute(store, "ALTER TABLE target_state RENAME TO target_state_gone")
    measurement = synthetic_measurement(blocking="dns", accessible=False,
                                        blocking_method="dns.nxdomain")
    with pytest.raises(Exception, match="target_state"):
        record_in_store(store, measurement, target=_target(), run_id="run-1", confirmation=0,
                        confirmations_needed=3)
    assert store.load_measurement(measurement["measurement_uid"]) is None
    assert store.spool_backlog() == 0
    assert store.load_transitions() == []


def test_the_runner_records_through_the_combined_write(store: Store) -> None:
    times = ["2026-11-25 18:00:00", "2026-11-25 18:00:30", "2026-11-25 18:01:00"]
    results = []
    for confirmation, measured_at in enumerate(times):
        measurement = synthetic_measurement(blocking="dns", accessible=False,
                                            blocking_method="dns.nxdomain",
                                            measured_at=measured_at)
        results.append(record_in_store(store, measurement, target=_target(), run_id="run-1",
                                       confirmation=confirmation, confirmations_needed=3))
    assert [result.state for result in results] == ["anomaly", "anomaly", "blocked"]
    assert [result.wants_confirmation for result in results] == [True, True, False]
    assert results[2].transition is not None and results[2].transition["to_state"] == "blocked"
    again = record_in_store(store, measurement, target=_target(), run_id="run-1",
                            confirmation=2, confirmations_needed=3)
    assert (again.saved, again.state, again.transition) == (False, "blocked", None)


def test_one_batch_decided_by_two_requests_at_once_is_counted_once(store: Store) -> None:
    """A timed-out upload re-sent to another collector thread or replica while the first copy
    is still being decided: the state machine must see each measurement once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from monitor.collector.intake import save_and_decide
    from monitor.store import open_store
    from monitor.store.rows import measurement_row

    url = getattr(store, "database_url", None) or f"sqlite:///{store.path}"  # type: ignore[attr-defined]
    both_reading = threading.Barrier(2, timeout=2)

    class SameMomentStore:
        """Both requests read the state before either writes (the interleaving to survive)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def load_state(self, vantage_id: str, page_url: str) -> Any:
            try:
                both_reading.wait()
            except threading.BrokenBarrierError:
                pass
            return self.inner.load_state(vantage_id, page_url)

    measurement = synthetic_measurement(blocking="dns", accessible=False,
                                        blocking_method="dns.nxdomain")
    row = measurement_row(measurement, target_id="azattyq", run_id=None, confirmation=0)
    others = [open_store(url), open_store(url)]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(
                lambda each: save_and_decide(SameMomentStore(each), [row],
                                             confirmations_needed=2), others))
    finally:
        for other in others:
            other.close()
    assert sorted(results) == [0, 1]
    assert [t["to_state"] for t in store.load_transitions()] == ["anomaly"]
    state = store.load_state("kz-almaty-1", "https://www.azattyq.org/")
    assert state is not None and (state["state"], state["streak"]) == ("anomaly", 1)
