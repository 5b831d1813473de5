"""The alert pipeline's tables (incidents, alerts, alert_deliveries): the `alerts` migration set."""

from __future__ import annotations

from monitor.store.migrations import Migration, MigrationSet

# Statements are written for SQLite; monitor.store.migrations.postgres_statement rewrites
# AUTOINCREMENT keys. Lists (vantages, ASNs, methods) are JSON text, as elsewhere in the store.
ALERT_TABLES: tuple[str, ...] = (
    """CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        target_id TEXT,
        status TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        closed_at TEXT,
        updated_at TEXT NOT NULL,
        affected TEXT NOT NULL DEFAULT '[]',
        asns TEXT NOT NULL DEFAULT '[]',
        methods TEXT NOT NULL DEFAULT '[]'
    )""",
    # At most one open incident per key, even with two collector replicas deciding at once.
    "CREATE UNIQUE INDEX incidents_one_open ON incidents (incident_key) WHERE status = 'open'",
    "CREATE INDEX incidents_opened ON incidents (opened_at)",
    """CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup_key TEXT NOT NULL UNIQUE,
        incident_id INTEGER,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        acked_at TEXT,
        summary TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_status ON alerts (status, id)",
    """CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claimed_until TEXT,
        last_error TEXT,
        sent_at TEXT,
        digest INTEGER NOT NULL DEFAULT 0,
        UNIQUE (alert_id, channel)
    )""",
    "CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at)",
)

# Version 1 was the store's migration 3 in the releases before named sets; the ledger adopts it.
ALERT_MIGRATIONS = MigrationSet("alerts", (
    Migration(1, "incidents, alerts, alert_deliveries (docs/alerts.md)", ALERT_TABLES),
))
