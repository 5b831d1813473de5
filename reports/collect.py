"""Reads what one report needs from a store, through monitor.store.queries (aggregates, few JSONs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from monitor.store import Store
from monitor.store.current_states import load_memberships
from monitor.store.queries import (
    ReadDatabase,
    load_daily_counts,
    load_evidence,
    load_method_counts,
    load_outcomes,
    load_states_at,
    load_targets,
    load_transitions_between,
)
from reports.build import ReportInputs, needed_uids
from reports.periods import Period, store_text
from targets.model import Target


class UnknownListError(ValueError):
    """A report was asked for a list the store and the registry do not know."""


def collect_inputs(store: Store, period: Period, targets: list[Target] | None = None, *,
                   now: datetime | None = None, title: str = "blockmon report",
                   lists: Sequence[str] = ()) -> ReportInputs:
    """Everything build_report needs for `period`; targets None = those saved in the store.

    `lists` limits the report to the targets and URLs of those lists (a URL in two lists is
    in the report of each, with its one state)."""
    db = ReadDatabase(store)
    since, until = store_text(period.start), store_text(period.end)
    all_targets = targets if targets is not None else load_targets(db)
    memberships = load_memberships(db)
    for target in all_targets:  # the registry file's, not yet saved by a run
        for target_url in target.urls:
            pairs = memberships.setdefault(target_url.url, [])
            if (target.list_name, target.id) not in pairs:
                pairs.append((target.list_name, target.id))
    chosen = tuple(dict.fromkeys(lists))
    if chosen:
        known = {name for pairs in memberships.values() for name, _ in pairs if name}
        missing = [name for name in chosen if name not in known]
        if missing:
            raise UnknownListError(f"no list {', '.join(map(repr, missing))} (known: "
                                   f"{', '.join(sorted(known)) or 'none'})")
        member_ids = {target_id for pairs in memberships.values()
                      for name, target_id in pairs if name in chosen}
        # A target of the list without any URL yet (a briefing mention) is still one of it.
        all_targets = [target for target in all_targets
                       if target.id in member_ids or target.list_name in chosen]
        urls = {url for url, pairs in memberships.items()
                if any(name in chosen for name, _ in pairs)}
    daily = _only(load_daily_counts(db, since, until), chosen, urls if chosen else set())
    methods = _only(load_method_counts(db, since, until), chosen, urls if chosen else set())
    outcome_uids, evidence_uids = needed_uids(daily, methods)
    return ReportInputs(
        period=period,
        generated_at=store_text(now or datetime.now(UTC)),
        targets=tuple(all_targets),
        daily=tuple(daily),
        methods=tuple(methods),
        states_at_start=tuple(_only(load_states_at(db, since), chosen, urls if chosen else set())),
        states_at_end=tuple(_only(load_states_at(db, until), chosen, urls if chosen else set())),
        transitions=tuple(_only(load_transitions_between(db, since, until), chosen,
                                urls if chosen else set())),
        outcomes=load_outcomes(db, outcome_uids),
        evidence=load_evidence(db, evidence_uids),
        title=title,
        lists=chosen,
        memberships={url: tuple(sorted({name for name, _ in pairs if name}))
                     for url, pairs in memberships.items()},
    )


class _HasUrl(Protocol):
    @property
    def url(self) -> str: ...


_Row = TypeVar("_Row", bound=_HasUrl)


def _only(rows: Sequence[_Row], lists: Sequence[str], urls: set[str]) -> list[_Row]:
    """The rows of the chosen lists' URLs (all of them when no list is chosen)."""
    return list(rows) if not lists else [row for row in rows if row.url in urls]


def merge_targets(registry: list[Target], stored: list[Target]) -> list[Target]:
    """The registry file's targets, plus those only the store knows (a collector's probes')."""
    known = {target.id for target in registry}
    return [*registry, *(target for target in stored if target.id not in known)]
