"""Pure: the report's summary (targets and URLs counted apart, each once), claim extents, overview."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from monitor.store.queries import DailyCounts
from reports.model import (
    BlockedPlace,
    Change,
    OverviewPoint,
    ReportInputs,
    Summary,
    TargetFinding,
    Vantage,
)
from targets.model import Target

CURRENT_DOMAIN = "blocked on its current domain"
FORMER_DOMAIN_ONLY = "blocked on a former domain only"
SOME_URLS = "blocked on some URLs"
# The roles that make up where an outlet is now (docs/targets.md): not its mirrors or articles.
_CURRENT_ROLES = frozenset({"home", "current"})


def _earliest(current: str | None, new: str | None) -> str | None:
    return new if current is None else current if new is None else min(current, new)


def decide_extent(finding: TargetFinding) -> str | None:
    """Where a still-blocked target is blocked, so a verdict never overstates (docs/reports.md).

    Only former hosts blocked -> a former domain only; every measured home or current URL
    blocked -> its current domain (a mirror reached around it does not change that);
    otherwise (say an article blocked, the home page not) -> some URLs."""
    if finding.verdict != "still blocked":
        return None
    blocked = [entry for entry in finding.lineage if entry.status == "blocked"]
    if not blocked:
        return None
    if all(entry.role == "former" for entry in blocked):
        return FORMER_DOMAIN_ONLY
    current = [entry for entry in finding.lineage
               if entry.role in _CURRENT_ROLES and entry.status != "not measurable"]
    if current and all(entry.status == "blocked" for entry in current):
        return CURRENT_DOMAIN
    return SOME_URLS


def with_extent(finding: TargetFinding, target: Target, inputs: ReportInputs) -> TargetFinding:
    """The finding with its extent and the lists its target and URLs belong to."""
    lists = {target.list_name} if target.list_name else set()
    for target_url in target.urls:
        lists.update(inputs.memberships.get(target_url.url, ()))
    return dataclasses.replace(finding, extent=decide_extent(finding),
                               lists=tuple(sorted(lists)))


def build_summary(findings: list[TargetFinding], inputs: ReportInputs,
                  vantages: dict[str, Vantage], changes: tuple[Change, ...]) -> Summary:
    """Targets by verdict, and URLs counted once however many lists or targets hold them."""
    def ids(verdict: str) -> tuple[str, ...]:
        return tuple(finding.target_id for finding in findings if finding.verdict == verdict)

    places: dict[str, list[str]] = defaultdict(list)
    since_by_place: dict[str, str | None] = {}
    blocked_since = []
    for finding in findings:
        for vantage_finding in finding.vantages:
            if vantage_finding.verdict != "still blocked":
                continue
            vantage_id = vantage_finding.vantage.vantage_id
            places[vantage_id].append(finding.target_id)
            starts = [url.state_since if url.state == "blocked" else url.first_blocked_at
                      for url in vantage_finding.urls if url.verdict == "still blocked"]
            since = min((start for start in starts if start), default=None)
            blocked_since.append((finding.target_id, vantage_id, since))
            since_by_place[vantage_id] = _earliest(since_by_place.get(vantage_id), since)
    urls = [url for finding in findings for vantage in finding.vantages for url in vantage.urls]
    down = tuple(finding.target_id for finding in findings
                 if finding.verdict == "not measurable"
                 and any(url.verdict == "down" for vantage in finding.vantages
                         for url in vantage.urls))
    return Summary(
        targets_total=len(findings),
        # Measured in the period: a state carried over from before is not a measurement.
        targets_measured=sum(1 for finding in findings
                             if any(url.measurements for vantage in finding.vantages
                                    for url in vantage.urls)),
        measurements=sum(row.measurements for row in inputs.daily),
        vantages=len({row.vantage_id for row in inputs.daily}),  # that measured in the period
        blocked_targets=ids("still blocked"), unblocked_targets=ids("no longer blocked"),
        never_blocked_targets=ids("never seen blocked"),
        not_measurable_targets=tuple(target_id for target_id in ids("not measurable")
                                     if target_id not in down),
        blocked_where=tuple(BlockedPlace(vantages[vantage_id], tuple(target_ids),
                                         since_by_place.get(vantage_id),
                                         vantages[vantage_id].source)
                            for vantage_id, target_ids in sorted(places.items())),
        blocked_since=tuple(blocked_since),
        new_blocks=sum(1 for change in changes if change.kind == "new block"),
        unblocks=sum(1 for change in changes if change.kind == "unblock"),
        down_targets=down,
        urls_total=len({target_url.url for target in inputs.targets
                        for target_url in target.urls} | {url.url for url in urls}),
        urls_measured=len({url.url for url in urls if url.measurements}),
        blocked_urls=tuple(sorted({url.url for url in urls if url.verdict == "still blocked"})))


def build_overview(inputs: ReportInputs, urls: set[str]) -> tuple[OverviewPoint, ...]:
    """The report's overview chart: count_blocked_per_day over its rows."""
    return count_blocked_per_day((row for row in inputs.daily if row.url in urls),
                                 inputs.memberships, inputs.lists)


def count_blocked_per_day(daily: Iterable[DailyCounts], memberships: Mapping[str, Sequence[str]],
                          lists: Sequence[str] = ()) -> tuple[OverviewPoint, ...]:
    """Distinct URLs with a blocked measurement per day, list and vantage; a URL counts in
    each list it belongs to, once per list (`lists` given: only those)."""
    blocked: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in daily:
        if row.blocked == 0:
            continue
        for list_name in memberships.get(row.url) or ("",):
            if lists and list_name not in lists:
                continue
            blocked[(row.day, list_name, row.vantage_id)].add(row.url)
    return tuple(OverviewPoint(day, list_name, vantage_id, len(found))
                 for (day, list_name, vantage_id), found in sorted(blocked.items()))


def summary_lines(summary: Summary) -> list[str]:
    """The summary in words, targets and URLs each named as such (HTML and Markdown alike)."""

    def targets(label: str, ids: tuple[str, ...]) -> str:
        return f"{label}: {len(ids)} {_plural(len(ids), 'target')} ({', '.join(ids) or 'none'})"

    return [
        targets("Blocked at the end of the period", summary.blocked_targets)
        + f"; {len(summary.blocked_urls)} {_plural(len(summary.blocked_urls), 'URL')} blocked, "
        "each counted once",
        targets("No longer blocked", summary.unblocked_targets),
        targets("Never seen blocked", summary.never_blocked_targets),
        targets("Down (failing for the control too)", summary.down_targets),
        targets("Not measured", summary.not_measurable_targets),
        f"New blocks: {summary.new_blocks}; unblocks: {summary.unblocks} (confirmed changes, "
        "counted per URL and vantage)",
        f"{summary.targets_total} targets with {summary.urls_total} URLs; "
        f"{summary.targets_measured} targets ({summary.urls_measured} URLs) measured; "
        f"{summary.measurements} measurements from {summary.vantages} vantage "
        f"{_plural(summary.vantages, 'point')}"]


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
