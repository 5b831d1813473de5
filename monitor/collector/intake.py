"""Collector side: uploaded measurements go through the state machine, as a probe's own do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.state import Observation, decide_next_state


def save_and_decide(store: Any, rows: Iterable[Mapping[str, Any]], *,
                    confirmations_needed: int) -> int:
    """Stores a batch (as store.save_measurements), then feeds each row, oldest first, to the
    per (vantage, url) state machine. Returns how many rows were new.

    Spooled measurements arrive late and in bulk after an outage; taken in measured_at order
    they still confirm blocks with the times they were measured at, so incidents are dated
    when blocking began, not when the probe got its network back.
    """
    batch = [dict(row) for row in rows]
    stored = int(store.save_measurements(batch))
    for row in sorted(batch, key=lambda item: (item["measured_at"], item["uid"])):
        current = store.load_state(row["vantage_id"], row["url"])
        if current is not None and current.get("last_uid") == row["uid"]:
            continue  # a re-sent batch: this measurement was decided on already
        decision = decide_next_state(current, Observation.from_row(row),
                                     confirmations_needed=confirmations_needed)
        if current is not None and decision.transition is None and \
                decision.new_state_row == dict(current):
            continue  # older than what the state already reflects
        store.save_state(decision.new_state_row, decision.transition)
    return stored
