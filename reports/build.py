"""Pure: stored rows and the target registry -> a Report (summary, verdicts per claim, charts' data)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from monitor.store.queries import (
    DailyCounts,
    EvidenceDetail,
    MeasurementOutcome,
    MethodCount,
    StateAt,
)
from reports import sources
from reports.methods import describe_method, method_family
from reports.model import (
    _URL_VERDICT_ORDER,
    VERDICT_ORDER,
    AsnMethods,
    Change,
    DayCell,
    HeatRow,
    LineageEntry,
    MethodFinding,
    Report,
    ReportInputs,
    TargetFinding,
    ThrottleRates,
    Timeline,
    UrlEvidence,
    Vantage,
    VantageFinding,
    format_share,
)
from reports.periods import Period
from reports.summary import build_overview, build_summary, with_extent
from targets.model import Target, TargetURL


def needed_uids(daily: Iterable[DailyCounts],
                methods: Iterable[MethodCount]) -> tuple[set[str], set[str]]:
    """(uids whose outcome decides an end state, uids whose JSON is quoted as evidence)."""
    last_by_pair: dict[tuple[str, str], str] = {}
    evidence: set[str] = set()
    for row in daily:
        key = (row.vantage_id, row.url)
        last_by_pair[key] = max(last_by_pair.get(key, ""), row.last_uid)
    for method in methods:
        evidence.add(method.last_uid)
    return set(last_by_pair.values()), evidence


# ---- per URL and vantage -------------------------------------------------------------------

@dataclass
class _Tally:
    """Daily rows of one (target, URL, vantage) folded over the period."""

    target_id: str | None
    url: str
    vantage: Vantage
    measurements: int = 0
    anomalies: int = 0
    blocked: int = 0
    accessible: int = 0
    down: int = 0
    unknown: int = 0
    first_blocked_at: str | None = None
    last_blocked_at: str | None = None
    first_blocked_uid: str | None = None
    last_blocked_uid: str | None = None
    last_uid: str = ""
    days: dict[str, DailyCounts] = field(default_factory=dict)

    def add(self, row: DailyCounts) -> None:
        self.measurements += row.measurements
        self.anomalies += row.anomalies
        self.blocked += row.blocked
        self.accessible += row.accessible
        self.down += row.down
        self.unknown += row.unknown
        self.first_blocked_at = _earliest(self.first_blocked_at, row.first_blocked_at)
        self.last_blocked_at = _latest(self.last_blocked_at, row.last_blocked_at)
        self.first_blocked_uid = _earliest(self.first_blocked_uid, row.first_blocked_uid)
        self.last_blocked_uid = _latest(self.last_blocked_uid, row.last_blocked_uid)
        self.last_uid = max(self.last_uid, row.last_uid)
        self.days[row.day] = row


def _earliest(current: str | None, new: str | None) -> str | None:
    return new if current is None else current if new is None else min(current, new)


def _latest(current: str | None, new: str | None) -> str | None:
    return new if current is None else current if new is None else max(current, new)


def decide_url_verdict(*, measurements: int, unknown: int, blocked: int, end_state: str,
                       blocked_at_start: bool) -> str:
    """The verdict words for one URL from one vantage (docs/reports.md, "Verdicts")."""
    if measurements == 0 or measurements == unknown:
        return "not measurable"
    if end_state == "blocked":
        return "still blocked"
    if end_state == "down":
        return "down"
    if blocked > 0 or blocked_at_start:
        return "no longer blocked" if end_state == "accessible" else "not measurable"
    return "never seen blocked" if end_state == "accessible" else "not measurable"


def _end_state(tally: _Tally | None, state: StateAt | None,
               outcomes: Mapping[str, MeasurementOutcome]) -> str:
    # The state machine's word wins (it needs confirmations before "blocked"); an unconfirmed
    # "anomaly", or no recorded state at all, falls back to the last measurement's outcome.
    if state is not None and state.state != "anomaly":
        return state.state
    if tally is not None and tally.last_uid in outcomes:
        outcome = outcomes[tally.last_uid].outcome
        if state is not None and outcome == "blocked":
            return "anomaly"  # blocked-looking but not confirmed by the monitor
        return outcome
    return state.state if state is not None else "not measured"


def _method_findings(methods: list[MethodCount],
                     evidence: Mapping[str, EvidenceDetail]) -> tuple[MethodFinding, ...]:
    merged: dict[tuple[str, str | None], MethodFinding] = {}
    for row in sorted(methods, key=lambda item: item.last_uid):
        detail = evidence.get(row.last_uid)
        issuer = detail.tls_issuer if detail and row.method == "tls.mitm" else None
        fingerprint = detail.fingerprint if detail else None
        key = (row.method, row.fingerprint_id)
        earlier = merged.get(key)
        count = row.measurements + (earlier.measurements if earlier else 0)
        merged[key] = MethodFinding(
            method=row.method, family=method_family(row.method),
            description=describe_method(row.method, tls_issuer=issuer, fingerprint=fingerprint,
                                        sni_passed=bool(detail and
                                                        detail.sni_differential_passed)),
            measurements=count, tls_issuer=issuer,
            fingerprint=fingerprint if row.method.endswith("blockpage") or row.method ==
            "tls.mitm" else None,
            first_seen_at=min(row.first_seen_at, earlier.first_seen_at) if earlier
            else row.first_seen_at,
            last_seen_at=row.last_seen_at, evidence_uid=row.last_uid,
            rates=ThrottleRates(*detail.throughput_rates)
            if detail and detail.throughput_rates and row.method.endswith(".throttled") else None)
    return tuple(sorted(merged.values(), key=lambda item: (-item.measurements, item.method)))


def _url_evidence(url: str, role: str, tally: _Tally | None, state_end: StateAt | None,
                  state_start: StateAt | None, methods: list[MethodCount],
                  inputs: ReportInputs) -> UrlEvidence:
    end_state = _end_state(tally, state_end, inputs.outcomes)
    counts = {name: getattr(tally, name) if tally else 0
              for name in ("measurements", "anomalies", "blocked", "accessible", "down",
                           "unknown")}
    # Where the monitor kept states, a block is one it confirmed: a lone timeout that no
    # re-test agreed with was never "blocked", so it cannot have been lifted either.
    blocked = counts["blocked"] if state_end is None else sum(
        1 for transition in inputs.transitions
        if transition.to_state == "blocked" and transition.url == url
        and transition.vantage_id == state_end.vantage_id)
    verdict = decide_url_verdict(
        measurements=counts["measurements"], unknown=counts["unknown"],
        blocked=blocked, end_state="blocked" if end_state == "anomaly" else end_state,
        blocked_at_start=state_start is not None and state_start.state == "blocked")
    method_findings = _method_findings(methods, inputs.evidence)
    uids = [tally.first_blocked_uid, tally.last_blocked_uid, tally.last_uid] if tally else []
    uids += [finding.evidence_uid for finding in method_findings]
    if state_end is not None and state_end.measurement_uid and tally is not None:
        uids.append(state_end.measurement_uid)
    return UrlEvidence(
        url=url, role=role, state=end_state,
        state_since=state_end.since if state_end is not None else None, verdict=verdict,
        anomaly_share=counts["anomalies"] / counts["measurements"] if counts["measurements"]
        else 0.0,
        first_blocked_at=tally.first_blocked_at if tally else None,
        last_blocked_at=tally.last_blocked_at if tally else None,
        methods=method_findings,
        evidence_uids=tuple(dict.fromkeys(uid for uid in uids if uid)),
        **counts)


# ---- per target -----------------------------------------------------------------------------

def _strongest(verdicts: Iterable[str], order: tuple[str, ...]) -> str:
    ranks = [order.index(verdict) for verdict in verdicts]
    return order[min(ranks)] if ranks else order[-1]


def _vantage_verdict(urls: tuple[UrlEvidence, ...], vantage: Vantage) -> tuple[str, str]:
    url_verdict = _strongest((url.verdict for url in urls), _URL_VERDICT_ORDER)
    if url_verdict == "still blocked":
        blocked = [url for url in urls if url.verdict == "still blocked"]
        methods = sorted({method.description for url in blocked for method in url.methods})
        how = f" by {'; '.join(methods)}" if methods else ""
        return "still blocked", f"{', '.join(url.url for url in blocked)} blocked on " \
            f"{vantage.label}{how}."
    if url_verdict == "no longer blocked":
        lifted = [url for url in urls if url.verdict == "no longer blocked"]
        last = max((url.last_blocked_at or "" for url in lifted), default="")
        when = f" (last seen blocked {last})" if last else ""
        return "no longer blocked", f"{', '.join(url.url for url in lifted)} accessible again " \
            f"on {vantage.label}{when}."
    if url_verdict == "never seen blocked":
        return "never seen blocked", f"No blocking seen on {vantage.label}."
    if url_verdict == "down":
        return "not measurable", f"The site is down from {vantage.label}: it fails for the " \
            "control too, so blocking cannot be told apart."
    return "not measurable", f"No usable measurement from {vantage.label} in the period."


def _lineage(target: Target, vantage_findings: list[VantageFinding]) -> tuple[LineageEntry, ...]:
    entries = []
    for target_url in target.urls:
        verdicts = [url.verdict for finding in vantage_findings for url in finding.urls
                    if url.url == target_url.url]
        measured = [verdict for verdict in verdicts if verdict != "not measurable"]
        if "still blocked" in verdicts:
            status = "blocked"
        elif measured and all(verdict == "down" for verdict in measured):
            status = "moved" if target_url.role == "former" else "dead"
        elif target_url.role == "former" and measured:
            status = "moved"
        elif "no longer blocked" in verdicts:
            status = "no longer blocked"
        elif "never seen blocked" in verdicts:
            status = "accessible"
        else:
            status = "not measurable"
        note = target_url.note
        if status == "moved" and measured and all(verdict == "down" for verdict in measured):
            note = "former domain, now down" + (f"; {note}" if note else "")
        entries.append(LineageEntry(target_url.url, target_url.role, status, note))
    return tuple(entries)


def _lineage_sentence(lineage: tuple[LineageEntry, ...]) -> str:
    if len(lineage) < 2:
        return ""
    parts = [f"{entry.url} ({entry.role}): {entry.status}" for entry in lineage]
    return " Domain lineage: " + "; ".join(parts) + "."


def _target_finding(target: Target, tallies: dict[tuple[str, str], _Tally],
                    vantages: dict[str, Vantage], inputs: ReportInputs,
                    methods_by_pair: dict[tuple[str, str], list[MethodCount]],
                    start_states: dict[tuple[str, str], StateAt],
                    end_states: dict[tuple[str, str], StateAt]) -> TargetFinding:
    urls = [(target_url.url, target_url.role) for target_url in target.urls]
    findings: list[VantageFinding] = []
    for vantage_id in sorted(vantages):
        seen = [url for url, _ in urls if (vantage_id, url) in tallies
                or (vantage_id, url) in end_states]
        if not seen:
            continue
        evidence = tuple(
            _url_evidence(url, role, tallies.get((vantage_id, url)),
                          end_states.get((vantage_id, url)), start_states.get((vantage_id, url)),
                          methods_by_pair.get((vantage_id, url), []), inputs)
            for url, role in urls if url in seen)
        verdict, explanation = _vantage_verdict(evidence, vantages[vantage_id])
        count = sum(url.measurements for url in evidence)
        findings.append(VantageFinding(vantages[vantage_id], verdict, explanation, evidence,
                                       f"{vantages[vantage_id].source}, {count} measurements"))
    lineage = _lineage(target, findings)
    if findings:
        verdict = _strongest((finding.verdict for finding in findings), VERDICT_ORDER)
        explanation = sources.claim_explanation(findings)
    elif not target.urls:
        verdict, explanation = "not measurable", "No URL is known for this target."
    else:
        verdict, explanation = "not measurable", "Not measured in the period."
    timelines = tuple(_timeline(target, vantage_id, tallies, inputs.period)
                      for vantage_id in sorted(vantages)
                      if any((vantage_id, url) in tallies for url, _ in urls))
    return TargetFinding(
        target_id=target.id, target_name=target.name, category_code=target.category_code,
        claim=target.briefing, verdict=verdict,
        explanation=explanation + _lineage_sentence(lineage), lineage=lineage,
        vantages=tuple(findings), timelines=timelines)


def day_cells(rows: Iterable[DailyCounts], period: Period) -> tuple[DayCell, ...]:
    """Daily rows summed per day, one cell for every day of the period (empty when unmeasured)."""
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for row in rows:
        totals = by_day[row.day]
        for index, value in enumerate((row.measurements, row.blocked, row.accessible, row.down,
                                       row.unknown)):
            totals[index] += value
    return tuple(DayCell(day, *by_day[day]) if day in by_day else DayCell(day, 0, 0, 0, 0, 0)
                 for day in period.days)


def _timeline(target: Target, vantage_id: str, tallies: dict[tuple[str, str], _Tally],
              period: Period) -> Timeline:
    rows = [row for target_url in target.urls
            for row in (tallies[(vantage_id, target_url.url)].days.values()
                        if (vantage_id, target_url.url) in tallies else ())]
    return Timeline(target.id, vantage_id, day_cells(rows, period))


# ---- the whole report -----------------------------------------------------------------------

def _targets_with_strays(inputs: ReportInputs) -> list[Target]:
    """The registry, plus a bare target for measured URLs it does not know (collector data)."""
    targets = list(inputs.targets)
    known_urls = {target_url.url for target in targets for target_url in target.urls}
    known_ids = {target.id for target in targets}
    strays: dict[str, list[str]] = defaultdict(list)
    for row in inputs.daily:
        if row.url not in known_urls:
            strays[row.target_id or row.url].append(row.url)
            known_urls.add(row.url)
    for stray_id, urls in sorted(strays.items()):
        if stray_id in known_ids:
            index = next(i for i, target in enumerate(targets) if target.id == stray_id)
            old = targets[index]
            targets[index] = Target(old.id, old.name, old.category_code,
                                    old.urls + tuple(TargetURL(url, "home") for url in urls),
                                    old.briefing, old.control, old.list_name, old.notes)
            continue
        targets.append(Target(stray_id, stray_id, "", tuple(TargetURL(url, "home")
                                                            for url in urls),
                              None, False, ""))
    return targets


def _changes(inputs: ReportInputs, names: dict[str, str]) -> tuple[Change, ...]:
    changes = []
    for transition in inputs.transitions:
        if transition.to_state == "blocked" and transition.from_state != "blocked":
            kind: Literal["new block", "unblock"] = "new block"
        elif transition.from_state == "blocked" and transition.to_state != "blocked":
            kind = "unblock"
        else:
            continue
        changes.append(Change(
            kind=kind, target_id=transition.target_id,
            target_name=names.get(transition.target_id or "", transition.target_id or
                                  transition.url),
            url=transition.url, vantage_id=transition.vantage_id, at=transition.at,
            from_state=transition.from_state, to_state=transition.to_state,
            method=transition.method, measurement_uid=transition.measurement_uid))
    return tuple(changes)


def _methods_by_asn(methods: Iterable[MethodCount]) -> tuple[AsnMethods, ...]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    names: dict[str, str | None] = {}
    for row in methods:
        asn = row.probe_asn or "AS?"
        counts[asn][row.method] += row.measurements
        names[asn] = names.get(asn) or row.probe_network_name
    return tuple(AsnMethods(asn, names[asn], tuple(sorted(per_method.items(),
                                                          key=lambda item: (-item[1], item[0]))))
                 for asn, per_method in sorted(counts.items()))


METHODOLOGY: Final[tuple[str, ...]] = (
    "Each measurement is an OONI Web Connectivity measurement: the probe resolves, connects, "
    "completes a TLS handshake and fetches each URL, and compares what it saw with an "
    "uncensored control helper.",
    "A measurement counts as blocked when the analysis names a kind of blocking "
    "(test_keys.blocking is dns, tcp_ip, http-failure or http-diff); as down when the site "
    "fails for the control as well; as unknown when there was no usable control.",
    "A URL's state is the monitor's confirmed state (an anomaly becomes 'blocked' only after "
    "re-tests agree); states and their changes are read from the store's transitions.",
    "The share of anomalous measurements counts scheduled measurements and re-tests alike.",
    "Verdicts: still blocked = blocked at the end of the period; no longer blocked = a "
    "confirmed block during or before the period, accessible at its end; never seen blocked = "
    "measured, never confirmed blocked, accessible at the end; not measurable = no usable "
    "measurement, or the site is down for the control too.",
)

CAVEATS: Final[tuple[str, ...]] = (
    "A vantage sees one network at one place; blocking elsewhere in the country may differ.",
    "Timeouts can be network trouble rather than censorship; only repeated, confirmed "
    "anomalies become 'blocked'.",
    "Throttling that still lets the page load within the timeouts is not detected.",
    "The briefing describes 2014-2015; sites have moved domains since, so the outlet's "
    "domain lineage (former, current, mirror) is measured and reported together.",
)


def build_report(inputs: ReportInputs) -> Report:
    """The report of one period: pure, so it can be rebuilt from the same rows at any time."""
    targets = _targets_with_strays(inputs)
    url_owner = {target_url.url: target.id for target in targets for target_url in target.urls}
    vantages: dict[str, Vantage] = {}
    tallies: dict[tuple[str, str], _Tally] = {}
    for row in sorted(inputs.daily, key=lambda item: item.day):
        vantages[row.vantage_id] = Vantage(row.vantage_id, row.probe_cc, row.probe_asn,
                                           row.probe_network_name)
        key = (row.vantage_id, row.url)
        if key not in tallies:
            tallies[key] = _Tally(row.target_id or url_owner.get(row.url), row.url,
                                  vantages[row.vantage_id])
        tallies[key].add(row)
    start_states = {(state.vantage_id, state.url): state for state in inputs.states_at_start}
    end_states = {(state.vantage_id, state.url): state for state in inputs.states_at_end}
    for state in inputs.states_at_end:
        vantages.setdefault(state.vantage_id, Vantage(state.vantage_id, None, None, None))
    methods_by_pair: dict[tuple[str, str], list[MethodCount]] = defaultdict(list)
    for method in inputs.methods:
        methods_by_pair[(method.vantage_id, method.url)].append(method)

    findings = [with_extent(_target_finding(target, tallies, vantages, inputs, methods_by_pair,
                                            start_states, end_states), target, inputs)
                for target in targets]
    names = {target.id: target.name for target in targets}
    changes = _changes(inputs, names)
    # Blocked first, then lifted, then the rest; registry order within each.
    findings.sort(key=lambda finding: VERDICT_ORDER.index(finding.verdict)
                  if finding.verdict in VERDICT_ORDER else len(VERDICT_ORDER))
    claims = tuple(finding for finding in findings if finding.claim is not None)
    others = tuple(finding for finding in findings
                   if finding.claim is None and finding.vantages)
    urls_of = {target.id: {target_url.url for target_url in target.urls} for target in targets}
    heatmap = tuple(
        HeatRow(finding.target_id, finding.target_name,
                day_cells((row for (vantage_id, url), tally in tallies.items()
                            if url in urls_of.get(finding.target_id, ())
                            for row in tally.days.values()), inputs.period))
        for finding in (*claims, *others) if finding.vantages)
    uids = [uid for finding in findings for vantage in finding.vantages for url in vantage.urls
            for uid in url.evidence_uids]
    uids += [change.measurement_uid for change in changes if change.measurement_uid]
    return Report(
        title=inputs.title, period=inputs.period, generated_at=inputs.generated_at,
        summary=build_summary([*claims, *others], inputs, vantages, changes),
        claims=claims, others=others, changes=changes,
        methods_by_asn=_methods_by_asn(inputs.methods), heatmap=heatmap,
        methodology=METHODOLOGY, caveats=CAVEATS,
        evidence_uids=tuple(dict.fromkeys(uids)), lists=inputs.lists,
        overview=build_overview(inputs, {url for target in targets
                                         for url in urls_of[target.id]}))


__all__ = ["AsnMethods", "DayCell", "HeatRow", "Report", "ReportInputs", "Timeline",
           "build_report", "day_cells", "decide_url_verdict", "format_share", "needed_uids"]
