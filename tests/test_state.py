"""The confirmed state machine: each state, each transition, confirmation and its corner cases."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.state import Observation, StateDecision, decide_next_state


def observe(minute: int, blocking: str | bool | None = False, accessible: bool | None = True,
            method: str | None = None, confirmation: int = 0) -> Observation:
    return Observation(vantage_id="kz-almaty-1", url="https://www.azattyq.org/",
                       blocking=blocking, accessible=accessible, blocking_method=method,
                       measured_at=f"2026-11-25T18:{minute:02d}:00Z", uid=f"uid-{minute}",
                       confirmation=confirmation, target_id="azattyq", list_name="briefing",
                       probe_cc="KZ", probe_asn="AS9198")


DNS = {"blocking": "dns", "accessible": False, "method": "dns.nxdomain"}
DNS_TIMEOUT = {"blocking": "dns", "accessible": False, "method": "dns.timeout"}
RESET = {"blocking": "http-failure", "accessible": False, "method": "tls.reset"}
OK = {"blocking": False, "accessible": True}
DOWN = {"blocking": False, "accessible": False}
UNKNOWN = {"blocking": None, "accessible": None}


def replay(*steps: dict[str, Any], needed: int = 3) -> list[StateDecision]:
    """Feeds observations one minute apart through the machine, as the store would."""
    current: dict[str, Any] | None = None
    decisions = []
    for minute, step in enumerate(steps):
        decision = decide_next_state(current, observe(minute, **step),
                                     confirmations_needed=needed)
        decisions.append(decision)
        current = decision.new_state_row
    return decisions


def states(decisions: list[StateDecision]) -> list[str]:
    return [decision.new_state_row["state"] for decision in decisions]


@pytest.mark.parametrize(("step", "expected"), [
    (OK, "accessible"), (DOWN, "down"), (UNKNOWN, "unknown"), (DNS, "anomaly"),
    ({"blocking": False, "accessible": None}, "unknown"),
])
def test_first_observation_sets_the_plain_state(step: dict[str, Any], expected: str) -> None:
    [decision] = replay(step)
    assert decision.new_state_row["state"] == expected
    assert decision.transition is not None
    assert (decision.transition["from_state"], decision.transition["to_state"]) == (None, expected)
    assert decision.new_state_row["since"] == "2026-11-25T18:00:00Z"
    assert decision.wants_confirmation is (expected == "anomaly")


def test_anomaly_becomes_blocked_after_the_needed_confirmations() -> None:
    decisions = replay(OK, DNS, DNS, DNS)
    assert states(decisions) == ["accessible", "anomaly", "anomaly", "blocked"]
    assert [d.wants_confirmation for d in decisions] == [False, True, True, False]
    blocked = decisions[-1]
    assert blocked.transition is not None
    assert (blocked.transition["from_state"], blocked.transition["to_state"]) == (
        "anomaly", "blocked")
    assert blocked.transition["method"] == "dns.nxdomain"
    assert blocked.transition["measurement_uid"] == "uid-3"
    # blocked since the first anomaly of the confirming streak, not since the confirmation
    assert blocked.new_state_row["since"] == "2026-11-25T18:01:00Z"
    assert blocked.new_state_row["last_change"] == "2026-11-25T18:03:00Z"
    assert blocked.new_state_row["streak"] == 3
    # the middle anomaly is no transition: nothing changed
    assert decisions[2].transition is None


def test_one_confirmation_needed_blocks_at_once() -> None:
    assert states(replay(OK, DNS, needed=1)) == ["accessible", "blocked"]


def test_confirmation_counts_the_family_not_the_exact_method() -> None:
    decisions = replay(DNS, DNS_TIMEOUT, DNS)
    assert states(decisions) == ["anomaly", "anomaly", "blocked"]
    assert decisions[-1].new_state_row["method"] == "dns.nxdomain"


def test_a_different_family_restarts_the_streak() -> None:
    decisions = replay(DNS, DNS, RESET, RESET, RESET)
    assert states(decisions) == ["anomaly", "anomaly", "anomaly", "anomaly", "blocked"]
    assert decisions[2].new_state_row["streak"] == 1
    assert decisions[2].new_state_row["since"] == "2026-11-25T18:02:00Z"
    assert decisions[-1].new_state_row["method"] == "tls.reset"


def test_a_clean_result_clears_an_anomaly() -> None:
    decisions = replay(DNS, DNS, OK, DNS)
    assert states(decisions) == ["anomaly", "anomaly", "accessible", "anomaly"]
    assert decisions[2].transition is not None
    assert decisions[2].transition["to_state"] == "accessible"
    assert decisions[3].new_state_row["streak"] == 1


def test_method_change_while_blocked_is_a_transition() -> None:
    decisions = replay(DNS, DNS, DNS, DNS, RESET)
    assert states(decisions)[-2:] == ["blocked", "blocked"]
    assert decisions[3].transition is None  # same method: no news
    change = decisions[4].transition
    assert change is not None
    assert (change["from_state"], change["to_state"]) == ("blocked", "blocked")
    assert (change["from_method"], change["method"]) == ("dns.nxdomain", "tls.reset")
    assert decisions[4].new_state_row["since"] == "2026-11-25T18:00:00Z"
    assert decisions[4].wants_confirmation is False


def test_unblocking_and_going_down_are_transitions() -> None:
    decisions = replay(DNS, DNS, DNS, OK, DOWN, DOWN)
    assert states(decisions)[3:] == ["accessible", "down", "down"]
    assert decisions[3].transition is not None
    assert (decisions[3].transition["from_state"], decisions[3].transition["from_method"]) == (
        "blocked", "dns.nxdomain")
    assert decisions[3].new_state_row["method"] is None
    assert decisions[5].transition is None
    assert decisions[5].new_state_row["streak"] == 2
    assert decisions[5].new_state_row["since"] == "2026-11-25T18:04:00Z"


def test_unknown_does_not_end_a_confirmed_block_but_ends_an_anomaly() -> None:
    blocked = replay(DNS, DNS, DNS, UNKNOWN)
    assert states(blocked)[-1] == "blocked"
    assert blocked[-1].transition is None
    assert blocked[-1].new_state_row["last_uid"] == "uid-3"
    unconfirmed = replay(DNS, UNKNOWN)
    assert states(unconfirmed) == ["anomaly", "unknown"]


def test_an_older_observation_changes_nothing() -> None:
    current = replay(OK)[0].new_state_row
    current = decide_next_state(current, observe(10, **DNS), confirmations_needed=3).new_state_row
    late = decide_next_state(current, observe(5, **OK), confirmations_needed=3)
    assert late.new_state_row == current
    assert late.transition is None


def test_observation_from_a_measurement_row() -> None:
    row = {"vantage_id": "v", "url": "https://x.example/", "blocking": "false",
           "accessible": 1, "blocking_method": None, "measured_at": "2026-11-25T18:00:00Z",
           "uid": "u", "confirmation": 0, "target_id": "x", "list_name": None,
           "probe_cc": "KZ", "probe_asn": "AS1"}
    observation = Observation.from_row(row)
    assert (observation.blocking, observation.accessible) == (False, True)
    assert observation.plain_state == "accessible"
    assert Observation.from_row(dict(row, blocking=None, accessible=None)).plain_state == "unknown"
    assert Observation.from_row(dict(row, blocking="tcp_ip", accessible=0)).family == "tcp"


def test_confirmations_needed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="confirmations_needed"):
        decide_next_state(None, observe(0), confirmations_needed=0)
