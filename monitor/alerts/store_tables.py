"""Reads and writes of the alert tables (incidents, alerts, alert_deliveries) on either backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from monitor.alerts.incidents import Affected, Incident, IncidentChange
from monitor.alerts.rules import ProbeActivity, UrlStatus
from monitor.store.base import Store

# Serialises evaluations across collector replicas sharing one PostgreSQL database.
_ADVISORY_ALERT_LOCK = 7312001


class AlertTables:
    """The alert pipeline's SQL over a store's Database (its own connection, one transaction).

    Blocking, like the store: call it on the store's writer thread (or a collector DB thread).
    SQL is written with `?` placeholders; the Database speaks them to either backend.
    """

    def __init__(self, store: Store) -> None:
        self.database = store.database

    # ---- plumbing -------------------------------------------------------------------------

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.database.rows(statement, params)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        return self.database.execute(statement, params)

    def transaction(self) -> AbstractContextManager[None]:
        """Re-entrant; serialises alert evaluations across replicas sharing one PostgreSQL."""
        return self.database.transaction(lock=_ADVISORY_ALERT_LOCK)

    def table_exists(self, name: str) -> bool:
        return self.database.table_exists(name)

    # ---- rule inputs ----------------------------------------------------------------------

    def load_url_statuses(self, control_ids: frozenset[str]) -> list[UrlStatus]:
        """Every target_state row, with whether its last measurement lost the control helper."""
        rows = self.rows(
            "SELECT s.vantage_id, s.url, s.target_id, s.state, s.method, s.since, s.last_uid, "
            "s.probe_asn, s.recent, m.control_failure FROM target_state s "
            "LEFT JOIN measurements m ON m.uid = s.last_uid ORDER BY s.vantage_id, s.url")
        return [UrlStatus.from_row(row, control_ids=control_ids) for row in rows]

    def load_probe_activity(self) -> list[ProbeActivity]:
        """Collector side: each enrolled, unrevoked probe's last check-in and measurement."""
        if not self.table_exists("probes"):
            return []
        rows = self.rows(
            "SELECT p.probe_id, p.probe_asn, COALESCE(p.last_seen_at, p.registered_at) AS seen, "
            "(SELECT MAX(measured_at) FROM measurements m WHERE m.vantage_id = p.probe_id) "
            "AS measured FROM probes p WHERE p.revoked_at IS NULL ORDER BY p.probe_id")
        return [ProbeActivity(vantage_id=row["probe_id"], probe_asn=row["probe_asn"],
                              last_check_in=row["seen"], last_measurement=row["measured"])
                for row in rows]

    def load_targets(self, target_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(target_ids))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        found = {}
        for row in self.rows(f"SELECT id, name, briefing FROM targets WHERE id IN ({marks})",
                             wanted):
            briefing = json.loads(row["briefing"]) if row["briefing"] else None
            found[row["id"]] = {"id": row["id"], "name": row["name"], "briefing": briefing}
        return found

    # ---- incidents ------------------------------------------------------------------------

    def load_incidents(self, *, status: str | None = "open",
                       limit: int | None = None) -> list[Incident]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        tail = " LIMIT ?" if limit else ""
        rows = self.rows(f"SELECT * FROM incidents {where} ORDER BY id DESC{tail}",
                         [*params, *([limit] if limit else [])])
        return [_incident_from_row(row) for row in rows]

    def save_incident(self, incident: Incident, now: str) -> int:
        affected = json.dumps([entry.as_dict() for entry in incident.affected])
        values = (incident.status, incident.closed_at, now, affected,
                  json.dumps(list(incident.asns)), json.dumps(list(incident.methods)))
        if incident.id is None:
            inserted = self.rows(
                "INSERT INTO incidents (status, closed_at, updated_at, affected, asns, methods, "
                "incident_key, kind, target_id, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (*values, incident.key, incident.kind, incident.target_id, incident.opened_at))
            return int(inserted[0]["id"])
        self.execute("UPDATE incidents SET status = ?, closed_at = ?, updated_at = ?, "
                     "affected = ?, asns = ?, methods = ? WHERE id = ?", (*values, incident.id))
        return incident.id

    # ---- alerts and their deliveries --------------------------------------------------------

    def record_alert(self, *, dedup_key: str, kind: str, incident_id: int | None,
                     payload: Mapping[str, Any], channels: Sequence[str], now: str) -> int | None:
        """Records the alert and one pending delivery per channel, before anything is sent.
        Returns the new alert id, or None when this very alert was recorded before."""
        with self.transaction():
            inserted = self.rows(
                "INSERT INTO alerts (dedup_key, incident_id, kind, created_at, status, summary, "
                "payload) VALUES (?, ?, ?, ?, 'open', ?, ?) ON CONFLICT (dedup_key) DO NOTHING "
                "RETURNING id",
                (dedup_key, incident_id, kind, now, payload["summary"],
                 json.dumps(payload, ensure_ascii=False)))
            if not inserted:
                return None
            alert_id = int(inserted[0]["id"])
            for channel in channels:
                self.execute("INSERT INTO alert_deliveries (alert_id, channel, status, "
                             "next_attempt_at) VALUES (?, ?, 'pending', ?)",
                             (alert_id, channel, now))
            return alert_id

    def apply_changes(self, changes: Iterable[IncidentChange], *, now: str,
                      build: Callable[[Any], dict[str, Any]],
                      channels_for: Callable[[str, dict[str, Any]], Sequence[str]]) -> list[int]:
        """Stores incident changes and their alerts (with deliveries); returns new alert ids."""
        alert_ids: list[int] = []
        with self.transaction():
            for change in changes:
                incident_id = self.save_incident(change.incident, now)
                for event in change.events:
                    stored_event = event.__class__(
                        kind=event.kind, incident=_with_id(event.incident, incident_id),
                        at=event.at, affected=event.affected, vantage_id=event.vantage_id,
                        previous_methods=event.previous_methods)
                    payload = build(stored_event)
                    alert_id = self.record_alert(
                        dedup_key=stored_event.dedup_key, kind=event.kind,
                        incident_id=incident_id, payload=payload,
                        channels=channels_for(event.kind, payload), now=now)
                    if alert_id is not None:
                        alert_ids.append(alert_id)
        return alert_ids

    def list_alerts(self, *, state: str = "open", limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE a.status = ?", [state]) if state != "all" else ("", [])
        return self.rows(
            "SELECT a.id, a.kind, a.created_at, a.status, a.acked_at, a.summary, a.incident_id, "
            "(SELECT COUNT(*) FROM alert_deliveries d WHERE d.alert_id = a.id "
            " AND d.status = 'sent') AS delivered, "
            "(SELECT COUNT(*) FROM alert_deliveries d WHERE d.alert_id = a.id) AS deliveries "
            f"FROM alerts a {where} ORDER BY a.id DESC LIMIT ?", [*params, limit])

    def ack_alert(self, alert_id: int, now: str) -> str:
        """"acked", "already" or "unknown"."""
        with self.transaction():
            changed = self.execute("UPDATE alerts SET status = 'acked', acked_at = ? "
                                   "WHERE id = ? AND status = 'open'", (now, alert_id))
            if changed:
                return "acked"
            exists = self.rows("SELECT 1 AS one FROM alerts WHERE id = ?", (alert_id,))
            return "already" if exists else "unknown"

    def due_deliveries(self, now: str, limit: int = 200) -> list[dict[str, Any]]:
        """Pending deliveries whose time has come, and claims whose lease ran out (a crash)."""
        return self.rows(
            "SELECT d.id, d.alert_id, d.channel, d.status, d.attempts, d.claimed_until, "
            "a.created_at, a.payload FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE (d.status = 'pending' AND d.next_attempt_at <= ?) "
            "OR (d.status = 'sending' AND d.claimed_until < ?) ORDER BY d.id LIMIT ?",
            (now, now, limit))

    def claim_delivery(self, delivery: Mapping[str, Any], *, now: str, lease_until: str) -> bool:
        """Conditional UPDATE: only one sender (process, replica) wins each delivery."""
        changed = self.execute(
            "UPDATE alert_deliveries SET status = 'sending', claimed_until = ?, "
            "attempts = attempts + 1 WHERE id = ? AND status = ? AND attempts = ?",
            (lease_until, delivery["id"], delivery["status"], delivery["attempts"]))
        return changed == 1

    def mark_sent(self, delivery_ids: Iterable[int], now: str, *, digest: bool = False) -> None:
        with self.transaction():
            for delivery_id in delivery_ids:
                self.execute("UPDATE alert_deliveries SET status = 'sent', sent_at = ?, "
                             "claimed_until = NULL, last_error = NULL, digest = ? "
                             "WHERE id = ? AND status = 'sending'",
                             (now, int(digest), delivery_id))

    def mark_unsent(self, delivery_ids: Iterable[int], *, error: str,
                    next_attempt_at: str | None) -> None:
        """Back to pending for a retry at next_attempt_at, or failed when that is None."""
        with self.transaction():
            for delivery_id in delivery_ids:
                if next_attempt_at is None:
                    self.execute("UPDATE alert_deliveries SET status = 'failed', "
                                 "claimed_until = NULL, last_error = ? WHERE id = ?",
                                 (error, delivery_id))
                else:
                    self.execute("UPDATE alert_deliveries SET status = 'pending', "
                                 "claimed_until = NULL, last_error = ?, next_attempt_at = ? "
                                 "WHERE id = ?", (error, next_attempt_at, delivery_id))

    def messages_sent_since(self, channel: str, since: str) -> int:
        """Messages a channel sent since `since`: single alerts, plus digests (the rows of
        one digest share their sent_at)."""
        row = self.rows(
            "SELECT (SELECT COUNT(*) FROM alert_deliveries WHERE channel = ? AND status = 'sent' "
            "AND digest = 0 AND sent_at >= ?) + (SELECT COUNT(DISTINCT sent_at) FROM "
            "alert_deliveries WHERE channel = ? AND status = 'sent' AND digest = 1 "
            "AND sent_at >= ?) AS n", (channel, since, channel, since))[0]
        return int(row["n"])

    def delivery_counts(self) -> list[dict[str, Any]]:
        return self.rows("SELECT channel, status, COUNT(*) AS n, SUM(attempts) AS attempts "
                         "FROM alert_deliveries GROUP BY channel, status ORDER BY channel, status")


def _with_id(incident: Incident, incident_id: int) -> Incident:
    return replace(incident, id=incident_id)


def _incident_from_row(row: Mapping[str, Any]) -> Incident:
    return Incident(
        id=int(row["id"]), key=row["incident_key"], kind=row["kind"], status=row["status"],
        opened_at=row["opened_at"], closed_at=row["closed_at"], target_id=row["target_id"],
        affected=tuple(Affected.from_dict(item) for item in json.loads(row["affected"])),
        asns=tuple(json.loads(row["asns"])), methods=tuple(json.loads(row["methods"])))
