"""The per (vantage, url) confirmed state machine: pure, from one verdict to the next state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.vocabulary import TargetState

# Methods are compared by family so that dns.nxdomain then dns.timeout still confirm "dns".
_FAMILY_OF_BLOCKING = {"dns": "dns", "tcp_ip": "tcp", "http-failure": "http", "http-diff": "http"}

# The k-of-n record (target_state.recent): the latest verdicts that say yes or no, "x" for
# interfered and "o" for fine, most recent last; down and unknown say neither and are not kept.
RECENT_WINDOW = 6
# Intermittent: at least this many verdicts in the record, at least INTERMITTENT_EACH of each
# kind among them, and back and forth at least INTERMITTENT_FLIPS times (a block that began or
# ended once is no flapping). Once intermittent, a URL leaves only when the record is no longer
# mixed (at most one verdict of the other kind in it), so it changes state once, not each time.
INTERMITTENT_MIN_VERDICTS = 4
INTERMITTENT_EACH = 2
INTERMITTENT_FLIPS = 3


@dataclass(frozen=True, slots=True)
class Observation:
    """The verdict of one measurement, as the state machine needs it."""

    vantage_id: str
    url: str
    blocking: str | bool | None
    accessible: bool | None
    blocking_method: str | None
    measured_at: str  # store time, "YYYY-MM-DDTHH:MM:SSZ"
    uid: str
    confirmation: int = 0
    target_id: str | None = None
    list_name: str | None = None
    probe_cc: str | None = None
    probe_asn: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Observation:
        """From a `measurements` row (monitor.store.rows.measurement_row)."""
        blocking = row["blocking"]
        return cls(
            vantage_id=row["vantage_id"], url=row["url"],
            blocking=False if blocking == "false" else blocking,
            accessible=None if row["accessible"] is None else bool(row["accessible"]),
            blocking_method=row["blocking_method"], measured_at=row["measured_at"],
            uid=row["uid"], confirmation=row.get("confirmation") or 0,
            target_id=row.get("target_id"), list_name=row.get("list_name"),
            probe_cc=row.get("probe_cc"), probe_asn=row.get("probe_asn"))

    @property
    def is_anomaly(self) -> bool:
        return isinstance(self.blocking, str)

    @property
    def family(self) -> str | None:
        """dns, tcp, tls or http: what kind of interference; None when not anomalous."""
        if not self.is_anomaly:
            return None
        if self.blocking_method:
            return self.blocking_method.split(".", 1)[0]
        return _FAMILY_OF_BLOCKING.get(str(self.blocking), str(self.blocking))

    @property
    def plain_state(self) -> TargetState:
        """The state this observation shows on its own, before any confirmation."""
        if self.is_anomaly:
            return "anomaly"
        if self.blocking is None:
            return "unknown"
        if self.accessible is True:
            return "accessible"
        if self.accessible is False:
            return "down"
        return "unknown"


def record_verdict(recent: str, verdict: Observation) -> str:
    """The k-of-n record with this verdict added (unchanged for down and unknown)."""
    mark = "x" if verdict.is_anomaly else "o" if verdict.plain_state == "accessible" else ""
    return (recent + mark)[-RECENT_WINDOW:]


def is_mixed(recent: str) -> bool:
    """Blocked in some attempts and fine in others: the record of an intermittent URL."""
    return (len(recent) >= INTERMITTENT_MIN_VERDICTS and recent.count("x") >= INTERMITTENT_EACH
            and recent.count("o") >= INTERMITTENT_EACH)


def is_flapping(recent: str) -> bool:
    """Mixed, and back and forth: what makes a URL intermittent."""
    flips = sum(1 for before, after in zip(recent, recent[1:], strict=False) if before != after)
    return is_mixed(recent) and flips >= INTERMITTENT_FLIPS


def interfered_share(recent: str) -> float | None:
    """k/n of the record: the share of the latest verdicts that saw interference."""
    return round(recent.count("x") / len(recent), 2) if recent else None


@dataclass(frozen=True, slots=True)
class StateDecision:
    """What to store after one observation, and whether to re-test soon."""

    new_state_row: dict[str, Any]
    transition: dict[str, Any] | None
    wants_confirmation: bool


def _family_of_method(method: str | None) -> str | None:
    return method.split(".", 1)[0] if method else None


def decide_next_state(current: Mapping[str, Any] | None, verdict: Observation, *,
                      confirmations_needed: int) -> StateDecision:
    """The next target_state row after `verdict`, and its transition if the state changed.

    - `confirmations_needed` consecutive anomalies of one family (scheduled run plus re-tests)
      make `blocked`; fewer leave `anomaly` and ask for a re-test.
    - A method change while blocked is a transition blocked -> blocked.
    - `unknown` (no control, could not tell) never ends a confirmed block: it is no evidence.
    - An observation older than the last one stored changes nothing (late uploads).
    - A record of the latest verdicts that flaps (is_flapping: interfered and fine, back and
      forth) makes `intermittent`, with the method last seen; it stays while the record is mixed.
    `since` is when the current state began (for blocked: the first anomaly of its streak).
    """
    if confirmations_needed < 1:
        raise ValueError("confirmations_needed must be at least 1")

    if current is not None and verdict.measured_at < current["last_measured_at"]:
        return StateDecision(dict(current), None, wants_confirmation=False)

    previous_state = current["state"] if current else None
    previous_method = current["method"] if current else None
    streak = current["streak"] if current else 0
    since = current["since"] if current else verdict.measured_at
    recent = record_verdict((current.get("recent") or "") if current else "", verdict)

    staying = previous_state == "intermittent" and is_mixed(recent)
    if staying or (is_flapping(recent) and previous_state != "intermittent"):
        state: TargetState = "intermittent"
        method = verdict.blocking_method or previous_method
        if previous_state != "intermittent":
            since, streak = verdict.measured_at, 1
        else:
            streak += 1
    elif verdict.is_anomaly and previous_state == "intermittent":
        # The record is no longer mixed and this one is interfered: the rest of it too.
        state, method, streak, since = "blocked", verdict.blocking_method or verdict.family, 1, \
            verdict.measured_at
    elif verdict.is_anomaly:
        if previous_state == "blocked":
            state = "blocked"
            method = verdict.blocking_method or previous_method
            streak += 1
        elif previous_state == "anomaly" and _family_of_method(previous_method) == verdict.family:
            streak += 1
            state = "blocked" if streak >= confirmations_needed else "anomaly"
            method = verdict.blocking_method or previous_method
        else:
            # First anomaly, or one of another family: a new streak starts here.
            streak = 1
            since = verdict.measured_at
            state = "blocked" if confirmations_needed == 1 else "anomaly"
            method = verdict.blocking_method or verdict.family
    else:
        observed = verdict.plain_state
        if observed == "unknown" and previous_state == "blocked":
            state, method = "blocked", previous_method
        elif observed == previous_state:
            state, method = observed, None
            streak += 1
        else:
            state, method = observed, None
            streak = 1
            since = verdict.measured_at

    changed = state != previous_state or (state == "blocked" and method != previous_method)
    last_change = verdict.measured_at if changed else current["last_change"]  # type: ignore[index]
    new_row = {
        "vantage_id": verdict.vantage_id,
        "url": verdict.url,
        "target_id": verdict.target_id or (current["target_id"] if current else None),
        "list_name": verdict.list_name or (current.get("list_name") if current else None),
        "state": state,
        "method": method,
        "since": since,
        "last_change": last_change,
        "last_measured_at": verdict.measured_at,
        "last_uid": verdict.uid,
        "probe_asn": verdict.probe_asn or (current["probe_asn"] if current else None),
        "probe_cc": verdict.probe_cc or (current["probe_cc"] if current else None),
        "streak": streak,
        "recent": recent,
    }
    transition = None
    if changed:
        transition = {
            "vantage_id": verdict.vantage_id,
            "url": verdict.url,
            "target_id": new_row["target_id"],
            "from_state": previous_state,
            "to_state": state,
            "from_method": previous_method,
            "method": method,
            "at": verdict.measured_at,
            "measurement_uid": verdict.uid,
        }
    return StateDecision(new_row, transition, wants_confirmation=state == "anomaly")
