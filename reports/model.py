"""The report model: what a report says, as frozen dataclasses every renderer reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from monitor.store.queries import (
    DailyCounts,
    EvidenceDetail,
    MeasurementOutcome,
    MethodCount,
    StateAt,
    Transition,
)
from probes.ooni.vantage import is_ooni_vantage
from reports.periods import Period
from targets.model import BriefingClaim, Target

Verdict = Literal["still blocked", "no longer blocked", "never seen blocked", "not measurable"]
# One URL from one vantage: the four verdicts, plus "down" (the site fails for the control too).
UrlVerdict = Literal["still blocked", "no longer blocked", "never seen blocked", "down",
                     "not measurable"]
# What a URL is in the outlet's lineage, across all vantages.
LineageStatus = Literal["blocked", "no longer blocked", "accessible", "dead", "moved",
                        "not measurable"]

# Stronger verdicts win when vantages or URLs disagree: one blocked vantage is a finding.
VERDICT_ORDER: Final[tuple[str, ...]] = ("still blocked", "no longer blocked",
                                         "never seen blocked", "not measurable")
_URL_VERDICT_ORDER: Final[tuple[str, ...]] = ("still blocked", "no longer blocked",
                                              "never seen blocked", "down", "not measurable")


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything build_report reads; gathered by reports.collect from the store."""

    period: Period
    generated_at: str
    targets: tuple[Target, ...]
    daily: tuple[DailyCounts, ...]
    methods: tuple[MethodCount, ...]
    states_at_start: tuple[StateAt, ...]
    states_at_end: tuple[StateAt, ...]
    transitions: tuple[Transition, ...]
    outcomes: Mapping[str, MeasurementOutcome]
    evidence: Mapping[str, EvidenceDetail]
    title: str = "blockmon report"
    lists: tuple[str, ...] = ()  # the lists the report is limited to; () = every list
    memberships: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # url -> lists


@dataclass(frozen=True, slots=True)
class MethodFinding:
    method: str
    family: str
    description: str
    measurements: int
    tls_issuer: str | None
    fingerprint: dict[str, Any] | None
    first_seen_at: str
    last_seen_at: str
    evidence_uid: str
    # *.throttled: the rates the judgement rests on (reports/templates/throttle_rates.html.j2).
    rates: ThrottleRates | None = None


@dataclass(frozen=True, slots=True)
class ThrottleRates:
    """A throttled page's rates in bytes/s: the probe's, the control's, the baseline's."""

    probe: float | None
    control: float | None
    baseline: float | None

    def bars(self) -> list[tuple[str, float | None, float]]:
        """(label, rate, bar width 0-100 on a log scale from 1 kB/s to the fastest)."""
        rates = [("probe", self.probe), ("control", self.control), ("baseline", self.baseline)]
        top = max((rate for _, rate in rates if rate), default=0.0)
        span = math.log10(top / 1000) if top > 1000 else 1.0
        return [(label, rate, round(100 * max(math.log10(max(rate, 1000) / 1000), 0.02 * span)
                                    / span, 1) if rate else 0.0) for label, rate in rates]


@dataclass(frozen=True, slots=True)
class UrlEvidence:
    """One URL seen from one vantage over the period."""

    url: str
    role: str
    state: str  # at the end of the period; "not measured" when no state was ever recorded
    state_since: str | None
    verdict: str
    measurements: int
    anomalies: int
    blocked: int
    accessible: int
    down: int
    unknown: int
    anomaly_share: float
    first_blocked_at: str | None
    last_blocked_at: str | None
    methods: tuple[MethodFinding, ...]
    evidence_uids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Vantage:
    vantage_id: str
    probe_cc: str | None
    probe_asn: str | None
    probe_network_name: str | None

    @property
    def label(self) -> str:
        network = f" {self.probe_network_name}" if self.probe_network_name else ""
        return f"{self.vantage_id} ({self.probe_cc or 'ZZ'}, {self.probe_asn or 'AS?'}{network})"

    @property
    def source(self) -> str:
        """Whose measurements: "OONI, AS9198 Kazakhtelecom" for imported ones (docs/ooni.md)."""
        if not is_ooni_vantage(self.vantage_id):
            return "blockmon"
        network = f" {self.probe_network_name}" if self.probe_network_name else ""
        return f"OONI, {self.probe_asn or 'AS?'}{network}"


@dataclass(frozen=True, slots=True)
class VantageFinding:
    vantage: Vantage
    verdict: str
    explanation: str
    urls: tuple[UrlEvidence, ...]
    # Whose measurements and how many: "OONI, AS9198 Kazakhtelecom, 37 measurements".
    source: str = ""


@dataclass(frozen=True, slots=True)
class LineageEntry:
    url: str
    role: str
    status: str
    note: str | None


@dataclass(frozen=True, slots=True)
class DayCell:
    day: str
    measurements: int
    blocked: int
    accessible: int
    down: int
    unknown: int


@dataclass(frozen=True, slots=True)
class Timeline:
    target_id: str
    vantage_id: str
    days: tuple[DayCell, ...]


@dataclass(frozen=True, slots=True)
class TargetFinding:
    """A target's verdict across vantages and its domain lineage, with the claim it tests."""

    target_id: str
    target_name: str
    category_code: str
    claim: BriefingClaim | None
    verdict: str
    explanation: str
    lineage: tuple[LineageEntry, ...]
    vantages: tuple[VantageFinding, ...]
    timelines: tuple[Timeline, ...]
    # Where a "still blocked" target is blocked (docs/reports.md, "Claim verdicts"): "blocked on
    # its current domain", "blocked on a former domain only" or "blocked on some URLs".
    extent: str | None = None
    lists: tuple[str, ...] = ()

    @property
    def verdict_words(self) -> str:
        """The verdict as a reader sees it: a block says where it holds."""
        return self.extent or self.verdict


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["new block", "unblock"]
    target_id: str | None
    target_name: str
    url: str
    vantage_id: str
    at: str
    from_state: str | None
    to_state: str
    method: str | None
    measurement_uid: str | None


@dataclass(frozen=True, slots=True)
class BlockedPlace:
    """A vantage where targets are blocked at the end of the period, and since when."""

    vantage: Vantage
    target_ids: tuple[str, ...]
    since: str | None
    source: str = ""  # Vantage.source


@dataclass(frozen=True, slots=True)
class Summary:
    targets_total: int
    targets_measured: int
    measurements: int
    vantages: int
    blocked_targets: tuple[str, ...]
    unblocked_targets: tuple[str, ...]
    never_blocked_targets: tuple[str, ...]
    not_measurable_targets: tuple[str, ...]
    blocked_where: tuple[BlockedPlace, ...]
    blocked_since: tuple[tuple[str, str, str | None], ...]  # (target, vantage, since)
    new_blocks: int  # confirmed blocks that began in the period, per URL and vantage
    unblocks: int  # and that ended
    down_targets: tuple[str, ...] = ()  # measured, but down for the control too
    urls_total: int = 0  # distinct URLs: one in two lists or targets counts once
    urls_measured: int = 0
    blocked_urls: tuple[str, ...] = ()  # distinct URLs still blocked on some vantage


@dataclass(frozen=True, slots=True)
class AsnMethods:
    probe_asn: str
    probe_network_name: str | None
    counts: tuple[tuple[str, int], ...]  # (method, measurements), most first


@dataclass(frozen=True, slots=True)
class HeatRow:
    target_id: str
    target_name: str
    cells: tuple[DayCell, ...]


@dataclass(frozen=True, slots=True)
class OverviewPoint:
    """How many distinct URLs of one list were blocked on one day from one vantage."""

    day: str
    list_name: str
    vantage_id: str
    blocked_urls: int


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    period: Period
    generated_at: str
    summary: Summary
    claims: tuple[TargetFinding, ...]  # targets with a briefing claim
    others: tuple[TargetFinding, ...]  # measured targets without one
    changes: tuple[Change, ...]
    methods_by_asn: tuple[AsnMethods, ...]
    heatmap: tuple[HeatRow, ...]
    methodology: tuple[str, ...]
    caveats: tuple[str, ...]
    evidence_uids: tuple[str, ...] = field(default=())
    lists: tuple[str, ...] = ()  # the lists the report is limited to; () = every list
    overview: tuple[OverviewPoint, ...] = ()  # blocked URLs per day, list and vantage


def format_share(share: float) -> str:
    """0.4 -> '40%', 1/3 -> '33.3%'; never '100%' or '0%' unless all or none."""
    percent = round(share * 100, 1)
    # Rounding must not turn "almost all" into "all" (or "a few" into "none").
    if 0 < share < 1:
        percent = min(max(percent, 0.1), 99.9)
    return f"{percent:g}%"
