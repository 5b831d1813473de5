"""Reads what one report needs from a store, through monitor.store.queries (aggregates, few JSONs)."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.store import Store
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


def collect_inputs(store: Store, period: Period, targets: list[Target] | None = None, *,
                   now: datetime | None = None, title: str = "blockmon report") -> ReportInputs:
    """Everything build_report needs for `period`; targets None = those saved in the store."""
    db = ReadDatabase(store)
    since, until = store_text(period.start), store_text(period.end)
    daily = load_daily_counts(db, since, until)
    methods = load_method_counts(db, since, until)
    states_at_end = load_states_at(db, until)
    outcome_uids, evidence_uids = needed_uids(daily, methods)
    return ReportInputs(
        period=period,
        generated_at=store_text(now or datetime.now(UTC)),
        targets=tuple(targets if targets is not None else load_targets(db)),
        daily=tuple(daily),
        methods=tuple(methods),
        states_at_start=tuple(load_states_at(db, since)),
        states_at_end=tuple(states_at_end),
        transitions=tuple(load_transitions_between(db, since, until)),
        outcomes=load_outcomes(db, outcome_uids),
        evidence=load_evidence(db, evidence_uids),
        title=title,
    )


def merge_targets(registry: list[Target], stored: list[Target]) -> list[Target]:
    """The registry file's targets, plus those only the store knows (a collector's probes')."""
    known = {target.id for target in registry}
    return [*registry, *(target for target in stored if target.id not in known)]
