"""Collector side: uploaded measurements go through the state machine, as a probe's own do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.state import Observation, StateDecision, decide_next_state
from monitor.store import Store


def save_and_decide(store: Store, rows: Iterable[Mapping[str, Any]], *,
                    confirmations_needed: int) -> int:
    """Stores a batch (as store.save_measurements), then feeds each row, oldest first, to the
    per (vantage, url) state machine. Returns how many rows were new.

    Spooled measurements arrive late and in bulk after an outage; taken in measured_at order
    they still confirm blocks with the times they were measured at, so incidents are dated
    when blocking began, not when the probe got its network back.
    """
    batch = [dict(row) for row in rows]
    stored = int(store.save_measurements(batch))

    def decide(current: dict[str, Any] | None, row: dict[str, Any]) -> StateDecision:
        if current is not None and current.get("last_uid") == row["uid"]:
            # A re-sent batch: this measurement was decided on already.
            return StateDecision(dict(current), None, wants_confirmation=False)
        return decide_next_state(current, Observation.from_row(row),
                                 confirmations_needed=confirmations_needed)

    # Each decision is one transaction holding the (vantage, url) pair: a batch re-sent while
    # the first copy is still being decided (a timed-out upload, another replica) is not
    # counted twice. A measurement older than the state changes nothing (decide_next_state).
    for row in sorted(batch, key=lambda item: (item["measured_at"], item["uid"])):
        store.decide_and_save_state(row, decide)
    return stored
