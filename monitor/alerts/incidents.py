"""Incidents (pure): signals for one target across vantages grouped, opened, escalated, closed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from monitor.alerts.rules import ProbeActivity, UrlStatus, VantageHealth
from monitor.alerts.vocabulary import AlertKind, IncidentKind, IncidentStatus

_OPENED: dict[str, AlertKind] = {"block": "block_confirmed", "outage": "outage",
                                 "silence": "probe_silent", "degraded": "vantage_degraded",
                                 "intermittent": "intermittent"}
_CLOSED: dict[str, AlertKind] = {"block": "block_lifted", "outage": "outage_ended",
                                 "silence": "probe_back", "degraded": "vantage_recovered",
                                 "intermittent": "intermittent_ended"}
# Incidents of one target (the others are of one vantage).
_TARGET_KINDS = frozenset({"block", "intermittent"})


@dataclass(frozen=True, slots=True)
class Affected:
    """One place an incident is seen: a vantage (network), and for blocks the URL and method."""

    vantage_id: str
    probe_asn: str | None
    since: str
    url: str | None = None
    method: str | None = None
    evidence_uid: str | None = None
    # Intermittent: the share of the latest verdicts that saw interference (k/n).
    share: float | None = None
    # Throttled: the rates (bytes/s) of the probe, the control and the same-network baseline.
    rates: tuple[float | None, float | None, float | None] | None = None

    @property
    def family(self) -> str | None:
        """dns, tcp, tls or http: a change of family is a change of blocking method."""
        return self.method.split(".", 1)[0] if self.method else None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "vantage_id": self.vantage_id, "probe_asn": self.probe_asn, "since": self.since,
            "url": self.url, "method": self.method, "evidence_uid": self.evidence_uid}
        if self.share is not None:
            data["share"] = self.share
        if self.rates is not None:
            data["rates"] = dict(zip(("probe", "control", "baseline"), self.rates, strict=True))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Affected:
        rates = data.get("rates")
        return cls(vantage_id=data["vantage_id"], probe_asn=data.get("probe_asn"),
                   since=data["since"], url=data.get("url"), method=data.get("method"),
                   evidence_uid=data.get("evidence_uid"), share=data.get("share"),
                   rates=None if not isinstance(rates, dict) else
                   (rates.get("probe"), rates.get("control"), rates.get("baseline")))


@dataclass(frozen=True, slots=True)
class Incident:
    """A block of one target (all vantages), an outage of one vantage, or a silent probe."""

    key: str
    kind: IncidentKind
    status: IncidentStatus
    opened_at: str
    affected: tuple[Affected, ...]
    target_id: str | None = None
    closed_at: str | None = None
    # Every ASN and method seen over the incident's life, for the timeline and reports.
    asns: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    id: int | None = None

    @property
    def vantages(self) -> tuple[str, ...]:
        return tuple(sorted({entry.vantage_id for entry in self.affected}))


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One thing worth telling: an incident opened, escalated, changed method, lifted or closed."""

    kind: AlertKind
    incident: Incident
    at: str
    affected: tuple[Affected, ...]
    vantage_id: str | None = None
    previous_methods: tuple[str, ...] = ()

    @property
    def dedup_key(self) -> str:
        """The same change always gets the same key, so recording it twice is refused."""
        where = self.vantage_id or "*"
        methods = ",".join(sorted({entry.method or "" for entry in self.affected}))
        return (f"{self.incident.key}|{self.incident.opened_at}|{self.kind}|{where}|"
                f"{methods}|{self.at}")


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """The incident as it must now be stored (id None = new), and the alerts it raises."""

    incident: Incident
    events: tuple[AlertEvent, ...] = field(default_factory=tuple)


# ---- what the current states ask for ------------------------------------------------------

def block_key(target_id: str) -> str:
    return f"block:{target_id}"


def outage_key(vantage_id: str) -> str:
    return f"outage:{vantage_id}"


def silence_key(vantage_id: str) -> str:
    return f"silence:{vantage_id}"


def intermittent_key(target_id: str) -> str:
    return f"intermittent:{target_id}"


Rates = tuple[float | None, float | None, float | None]


def wanted_blocks(blocks: Iterable[UrlStatus], rates: Mapping[str, Rates] | None = None,
                  ) -> dict[str, tuple[Affected, ...]]:
    """Confirmed blocks grouped by target: one incident per target, whatever the vantages.

    `rates` (by evidence uid) are a throttled block's figures, carried by its alerts.
    """
    return _by_target(blocks, block_key, rates or {})


def wanted_intermittent(statuses: Iterable[UrlStatus]) -> dict[str, tuple[Affected, ...]]:
    """Intermittent URLs grouped by target, each with its share: one incident per target."""
    return _by_target(statuses, intermittent_key, {})


def _by_target(statuses: Iterable[UrlStatus], key_of: Any, rates: Mapping[str, Rates],
               ) -> dict[str, tuple[Affected, ...]]:
    grouped: dict[str, list[Affected]] = {}
    for status in statuses:
        assert status.target_id is not None
        grouped.setdefault(key_of(status.target_id), []).append(Affected(
            vantage_id=status.vantage_id, probe_asn=status.probe_asn, since=status.since,
            url=status.url, method=status.method, evidence_uid=status.last_uid,
            share=status.share if status.state == "intermittent" else None,
            rates=rates.get(status.last_uid or "")))
    return {key: _sorted(entries) for key, entries in grouped.items()}


def wanted_outages(health: Iterable[VantageHealth]) -> dict[str, tuple[Affected, ...]]:
    return {outage_key(vantage.vantage_id): (Affected(
        vantage_id=vantage.vantage_id, probe_asn=vantage.probe_asn,
        since=vantage.since or "", evidence_uid=vantage.evidence_uid),)
        for vantage in health if vantage.outage}


def wanted_silences(silent: Iterable[ProbeActivity]) -> dict[str, tuple[Affected, ...]]:
    return {silence_key(probe.vantage_id): (Affected(
        vantage_id=probe.vantage_id, probe_asn=probe.probe_asn,
        since=probe.last_heard or ""),) for probe in silent}


# ---- reconciling stored incidents with what the states ask for ---------------------------

def _sorted(entries: Iterable[Affected]) -> tuple[Affected, ...]:
    return tuple(sorted(entries, key=lambda entry: (entry.vantage_id, entry.url or "")))


def _union(old: tuple[str, ...], new: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted(set(old) | {value for value in new if value}))


def _with_history(incident: Incident, affected: tuple[Affected, ...]) -> Incident:
    return replace(incident, affected=affected,
                   asns=_union(incident.asns, (entry.probe_asn for entry in affected)),
                   methods=_union(incident.methods, (entry.method for entry in affected)))


def reconcile(kind: IncidentKind, open_incidents: Iterable[Incident],
              wanted: Mapping[str, tuple[Affected, ...]], *, now: str,
              frozen_vantages: frozenset[str] = frozenset(),
              lifted_at: Mapping[tuple[str, str | None], str] | None = None,
              ) -> list[IncidentChange]:
    """The changes that make the open incidents of `kind` match `wanted`.

    `frozen_vantages` (in an outage, controls down, probe silent) can neither lift nor add
    anything: their entries stay as they were, because a network that cannot reach anything
    says nothing about one target. `lifted_at` gives, per (vantage, url), when its current
    non-blocked state began, so a late-arriving lift is dated when it happened.
    """
    lifted_at = lifted_at or {}
    by_key = {incident.key: incident for incident in open_incidents if incident.kind == kind}
    changes: list[IncidentChange] = []
    for key in sorted(set(by_key) | set(wanted)):
        old = by_key.get(key)
        entries = tuple(entry for entry in wanted.get(key, ())
                        if entry.vantage_id not in frozen_vantages)
        if old is None:
            if not entries:
                continue
            opened_at = min(entry.since for entry in entries) or now
            incident = _with_history(Incident(
                key=key, kind=kind, status="open", opened_at=opened_at, affected=entries,
                target_id=key.split(":", 1)[1] if kind in _TARGET_KINDS else None), entries)
            changes.append(IncidentChange(incident, (AlertEvent(
                _OPENED[kind], incident, opened_at, entries,
                vantage_id=None if kind in _TARGET_KINDS else entries[0].vantage_id),)))
            continue
        kept = tuple(entry for entry in old.affected if entry.vantage_id in frozen_vantages)
        current = _sorted(kept + entries)
        if not current:
            when = max((lifted_at.get((entry.vantage_id, entry.url), now)
                        for entry in old.affected), default=now)
            closed = replace(old, status="closed", closed_at=when, affected=())
            changes.append(IncidentChange(closed, (AlertEvent(
                _CLOSED[kind], closed, when, old.affected,
                vantage_id=None if kind in _TARGET_KINDS else old.affected[0].vantage_id),)))
            continue
        if current == old.affected:
            continue
        updated = _with_history(old, current)
        if kind == "intermittent":
            # A flapping target is told once when it starts and once when it ends; its share
            # and places are kept up to date without another alert.
            changes.append(IncidentChange(updated))
            continue
        changes.append(IncidentChange(updated, tuple(_block_events(old, updated, now,
                                                                   lifted_at))))
    return changes


def _block_events(old: Incident, new: Incident, now: str,
                  lifted_at: Mapping[tuple[str, str | None], str]) -> list[AlertEvent]:
    """Escalations (new networks), method changes and partial lifts of one open incident."""
    events: list[AlertEvent] = []
    old_by_vantage = _by_vantage(old.affected)
    new_by_vantage = _by_vantage(new.affected)
    joined = [entry for vantage in sorted(set(new_by_vantage) - set(old_by_vantage))
              for entry in new_by_vantage[vantage]]
    if joined:
        at = max(entry.since for entry in joined)
        events.append(AlertEvent("block_escalated", new, at, tuple(joined)))
    for vantage in sorted(set(new_by_vantage) & set(old_by_vantage)):
        before = {entry.family for entry in old_by_vantage[vantage]} - {None}
        after = {entry.family for entry in new_by_vantage[vantage]} - {None}
        if after - before:
            changed = tuple(entry for entry in new_by_vantage[vantage]
                            if entry.family not in before)
            events.append(AlertEvent(
                "method_changed", new, now, changed, vantage_id=vantage,
                previous_methods=tuple(sorted({entry.method or "" for entry in
                                               old_by_vantage[vantage]}))))
    for vantage in sorted(set(old_by_vantage) - set(new_by_vantage)):
        left = old_by_vantage[vantage]
        at = max(lifted_at.get((entry.vantage_id, entry.url), now) for entry in left)
        events.append(AlertEvent("block_lifted", new, at, left, vantage_id=vantage))
    return events


def _by_vantage(entries: Iterable[Affected]) -> dict[str, tuple[Affected, ...]]:
    grouped: dict[str, list[Affected]] = {}
    for entry in entries:
        grouped.setdefault(entry.vantage_id, []).append(entry)
    return {vantage: tuple(items) for vantage, items in grouped.items()}
