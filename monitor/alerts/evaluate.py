"""One pass of the rules over the store: current states -> incidents -> recorded alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.alerts.incidents import (
    AlertEvent,
    IncidentChange,
    reconcile,
    wanted_blocks,
    wanted_intermittent,
    wanted_outages,
    wanted_silences,
)
from monitor.alerts.memberships import load_url_memberships, wanted_by_lists, with_memberships
from monitor.alerts.messages import build_payload
from monitor.alerts.rules import (
    RuleConfig,
    assess_vantages,
    confirmed_blocks,
    detect_silent_probes,
    intermittent_targets,
)
from monitor.alerts.store_tables import AlertTables
from monitor.alerts.throttle_figures import throttled_rates
from monitor.alerts.vantage_health import wanted_degraded
from monitor.store import Store
from monitor.store.rows import store_time
from probes.ooni.vantage import is_ooni_vantage


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """What a pass needs besides the store."""

    rules: RuleConfig = field(default_factory=RuleConfig)
    kinds: frozenset[str] = frozenset()
    channels: tuple[str, ...] = ()
    control_ids: frozenset[str] = frozenset()
    dashboard_url: str | None = None
    round_interval_seconds: float = 3600.0
    # Target id -> {"name", "briefing"} from the registry, for targets the store's targets
    # table lacks (a collector stores measurements of targets it was never given).
    known_targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # [ooni] alerts: whether states of imported OONI networks (vantages ooni:...) raise alerts.
    ooni_alerts: bool = False
    # [alerts] lists: send only alerts about URLs in one of these lists (empty = all).
    lists: frozenset[str] = frozenset()


def evaluate_alerts(store: Store, config: EvaluationConfig, now: datetime) -> list[int]:
    """Runs on the store's thread, in one transaction: reconcile the open incidents with the
    current target states (and, at a collector, with probe silence); record the alerts and
    their pending deliveries. Returns the ids of new alerts.

    Deciding from current states rather than from single transitions makes a pass idempotent:
    a restart, a second replica or a late batch of spooled measurements re-derives the same
    incidents, and the unique dedup key refuses any alert already recorded.
    """
    tables = AlertTables(store)
    stamp = store_time(now)
    with tables.transaction():
        statuses = [status for status in tables.load_url_statuses(config.control_ids)
                    if config.ooni_alerts or not is_ooni_vantage(status.vantage_id)]
        health = assess_vantages(statuses, config.rules)
        silent = detect_silent_probes(tables.load_probe_activity(),
                                      interval_seconds=config.round_interval_seconds,
                                      config=config.rules, now=now)
        silent_ids = {probe.vantage_id for probe in silent}
        frozen = frozenset({vantage for vantage, state in health.items() if not state.trusted}
                           | silent_ids)
        open_incidents = tables.load_incidents(status="open")
        lifted_at: dict[tuple[str, str | None], str] = {
            (status.vantage_id, status.url): status.since for status in statuses
            if status.state != "blocked"}
        changes: list[IncidentChange] = []
        blocks = confirmed_blocks(statuses, health)
        changes += reconcile("block", open_incidents,
                             wanted_blocks(blocks, throttled_rates(tables, blocks)), now=stamp,
                             frozen_vantages=frozen, lifted_at=lifted_at)
        changes += reconcile("intermittent", open_incidents,
                             wanted_intermittent(intermittent_targets(statuses, health)),
                             now=stamp, frozen_vantages=frozen, lifted_at={
                                 (status.vantage_id, status.url): status.since
                                 for status in statuses if status.state != "intermittent"})
        # A silent probe's last states are stale: it neither starts nor ends an outage.
        changes += reconcile("outage", open_incidents, wanted_outages(
            state for vantage, state in health.items() if vantage not in silent_ids),
            now=stamp, frozen_vantages=frozenset(silent_ids))
        changes += reconcile("silence", open_incidents, wanted_silences(silent), now=stamp)
        changes += reconcile("degraded", open_incidents, wanted_degraded(tables), now=stamp)
        if not changes:
            return []
        targets = {**config.known_targets,
                   **tables.load_targets(change.incident.target_id for change in changes
                                         if change.incident.target_id)}

        memberships = load_url_memberships(tables, (
            place.url for change in changes for event in change.events
            for place in event.affected if place.url))

        def build(event: AlertEvent) -> dict[str, Any]:
            return with_memberships(build_payload(
                event, target=targets.get(event.incident.target_id or ""),
                dashboard_url=config.dashboard_url), memberships)

        def channels_for(kind: str, payload: Mapping[str, Any]) -> Sequence[str]:
            wanted = kind in config.kinds and wanted_by_lists(payload, config.lists)
            return config.channels if wanted else ()

        return tables.apply_changes(changes, now=stamp, build=build, channels_for=channels_for)
