"""Alert rules (pure): which vantages are out, which blocks are confirmed, which probes are silent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.settings import AlertsSettings, knobs_from
from monitor.state import interfered_share
from monitor.store.rows import store_time

# States that mean "this URL does not work from here". `unknown` counts only when even the
# control helper could not be reached: that is what a shut-off network looks like, whereas a
# probe run without a helper is unknown everywhere and must not look like an outage.
_FAILING_STATES = frozenset({"anomaly", "blocked", "down"})
_ALERTS = AlertsSettings()


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """The [alerts] knobs the rules need (their defaults are [alerts]'s)."""

    outage_fraction: float = _ALERTS.outage_fraction
    outage_min_urls: int = _ALERTS.outage_min_urls
    silence_factor: float = _ALERTS.silence_factor

    @classmethod
    def from_settings(cls, alerts: AlertsSettings) -> RuleConfig:
        return knobs_from(cls, alerts)


@dataclass(frozen=True, slots=True)
class UrlStatus:
    """One (vantage, url) as the rules see it: its target_state row plus two facts."""

    vantage_id: str
    url: str
    target_id: str | None
    state: str
    method: str | None
    since: str
    last_uid: str | None
    probe_asn: str | None
    is_control: bool = False
    control_failed: bool = False  # the last measurement could not reach the control helper
    # The k-of-n record of its latest verdicts (monitor/state.py), "x" interfered, "o" fine.
    recent: str = ""

    @property
    def share(self) -> float | None:
        """The share of the latest verdicts that saw interference (k/n of the record)."""
        return interfered_share(self.recent)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, control_ids: frozenset[str]) -> UrlStatus:
        return cls(vantage_id=row["vantage_id"], url=row["url"], target_id=row.get("target_id"),
                   state=row["state"], method=row.get("method"), since=row["since"],
                   last_uid=row.get("last_uid"), probe_asn=row.get("probe_asn"),
                   is_control=_is_control(row.get("target_id"), control_ids),
                   control_failed=bool(row.get("control_failure")),
                   recent=row.get("recent") or "")

    @property
    def failing(self) -> bool:
        return self.state in _FAILING_STATES or (self.state == "unknown" and self.control_failed)


def _is_control(target_id: str | None, control_ids: frozenset[str]) -> bool:
    # Without the registry's list (a collector may run without it), the registry's naming
    # convention for control targets is the next best thing.
    if control_ids:
        return target_id in control_ids
    return bool(target_id and target_id.startswith("control-"))


@dataclass(frozen=True, slots=True)
class VantageHealth:
    """Whether one vantage can be trusted to speak of single targets this round."""

    vantage_id: str
    probe_asn: str | None
    measured_urls: int
    failing_urls: int
    controls_measured: int
    controls_failing: int
    outage: bool
    since: str | None  # when the failing began (for an outage): controls first, else median
    evidence_uid: str | None

    @property
    def controls_reachable(self) -> bool:
        """No control measured means we cannot tell, and a block stays believable."""
        return self.controls_measured == 0 or self.controls_failing < self.controls_measured

    @property
    def trusted(self) -> bool:
        return not self.outage and self.controls_reachable


def assess_vantage(statuses: Iterable[UrlStatus], config: RuleConfig) -> VantageHealth:
    """One vantage's latest states: is most of it failing, controls included (an outage)?"""
    rows = list(statuses)
    if not rows:
        raise ValueError("assess_vantage needs the states of at least one URL")
    failing = [row for row in rows if row.failing]
    controls = [row for row in rows if row.is_control]
    controls_failing = sum(1 for row in controls if row.failing)
    share = len(failing) / len(rows)
    # With controls measured, the outage needs them failing too: otherwise it is a wide block
    # of targets, which is worth one alert per target.
    controls_agree = not controls or controls_failing * 2 > len(controls)
    outage = (len(rows) >= config.outage_min_urls and share >= config.outage_fraction
              and controls_agree)
    # When did it start? The controls tell best (they never fail for long on their own); a
    # site dead for weeks must not date a shutdown that began today.
    failing_controls = [row for row in controls if row.failing]
    if failing_controls:
        earliest: UrlStatus | None = min(failing_controls, key=lambda row: row.since)
    elif failing:
        earliest = sorted(failing, key=lambda row: row.since)[len(failing) // 2]
    else:
        earliest = None
    return VantageHealth(
        vantage_id=rows[0].vantage_id,
        probe_asn=next((row.probe_asn for row in rows if row.probe_asn), None),
        measured_urls=len(rows), failing_urls=len(failing),
        controls_measured=len(controls), controls_failing=controls_failing,
        outage=outage, since=earliest.since if earliest else None,
        evidence_uid=earliest.last_uid if earliest else None)


def assess_vantages(statuses: Iterable[UrlStatus],
                    config: RuleConfig) -> dict[str, VantageHealth]:
    by_vantage: dict[str, list[UrlStatus]] = {}
    for status in statuses:
        by_vantage.setdefault(status.vantage_id, []).append(status)
    return {vantage: assess_vantage(rows, config) for vantage, rows in sorted(by_vantage.items())}


def confirmed_blocks(statuses: Iterable[UrlStatus],
                     health: Mapping[str, VantageHealth]) -> list[UrlStatus]:
    """Confirmed blocks (the state machine ran its re-tests) of non-control targets, at
    vantages whose controls are reachable and which are not in an outage."""
    return [status for status in statuses
            if status.state == "blocked" and not status.is_control
            and status.target_id is not None and health[status.vantage_id].trusted]


def intermittent_targets(statuses: Iterable[UrlStatus],
                         health: Mapping[str, VantageHealth]) -> list[UrlStatus]:
    """URLs of non-control targets in the intermittent state, at trusted vantages."""
    return [status for status in statuses
            if status.state == "intermittent" and not status.is_control
            and status.target_id is not None and health[status.vantage_id].trusted]


@dataclass(frozen=True, slots=True)
class ProbeActivity:
    """When a collector last heard from one probe (check-in or measurement)."""

    vantage_id: str
    probe_asn: str | None
    last_check_in: str | None
    last_measurement: str | None

    @property
    def last_heard(self) -> str | None:
        # Store times sort as text.
        heard = [moment for moment in (self.last_check_in, self.last_measurement) if moment]
        return max(heard) if heard else None


def detect_silent_probes(activity: Iterable[ProbeActivity], *, interval_seconds: float,
                         config: RuleConfig, now: datetime) -> list[ProbeActivity]:
    """Probes not heard from for longer than silence_factor round intervals."""
    cutoff = store_time(now - timedelta(seconds=interval_seconds * config.silence_factor))
    return [probe for probe in activity
            if probe.last_heard is not None and probe.last_heard < cutoff]
