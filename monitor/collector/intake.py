"""Collector side: uploaded measurements go through the state machine, as a probe's own do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.state import Observation, StateDecision, decide_next_state
from monitor.store import Store


def save_and_decide(store: Store, rows: Iterable[Mapping[str, Any]], *,
                    confirmations_needed: int) -> int:
    """Stores a batch and feeds each row it stored, oldest first, to the per (vantage, url) state
    machine, in one transaction; returns how many rows were new.

    Only the rows stored here are decided: a uid already stored is someone's evidence already
    (another probe's, or this probe's own batch re-sent after a lost answer), and re-labelled
    with another vantage or URL it would move a state no stored measurement stands behind.
    Spooled measurements arrive late and in bulk after an outage; taken in measured_at order
    they still confirm blocks with the times they were measured at, so incidents are dated
    when blocking began, not when the probe got its network back.
    """

    def decide(current: dict[str, Any] | None, row: dict[str, Any]) -> StateDecision:
        return decide_next_state(current, Observation.from_row(row),
                                 confirmations_needed=confirmations_needed)

    return len(store.save_measurements_with_states(rows, decide))
