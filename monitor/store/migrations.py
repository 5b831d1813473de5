"""Migrations as named sets (the store's own here; alerts and collector bring theirs)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of a set: statements in SQLite's spelling (postgres_statement rewrites them)."""

    version: int
    description: str
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MigrationSet:
    """The ordered migrations of one owner of tables, recorded under `name` in the ledger
    (monitor.store.ledger). Append a migration to change a schema; never edit a released one."""

    name: str
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return max((migration.version for migration in self.migrations), default=0)


# Column types stay plain (TEXT, INTEGER, REAL) so Datasette and other tools read them as is.
# Foreign keys are declared for browsing (Datasette links them) but not enforced: a collector
# stores measurements of runs and targets it never saw.
_SCHEMA_1 = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        list_name TEXT NOT NULL,
        vantage_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        measured INTEGER,
        anomalies INTEGER,
        counts TEXT
    )""",
    """CREATE TABLE targets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        list_name TEXT,
        category_code TEXT,
        urls TEXT NOT NULL DEFAULT '[]',
        briefing TEXT
    )""",
    """CREATE TABLE measurements (
        uid TEXT PRIMARY KEY,
        run_id TEXT REFERENCES runs(id),
        target_id TEXT REFERENCES targets(id),
        url TEXT NOT NULL,
        vantage_id TEXT NOT NULL,
        probe_cc TEXT,
        probe_asn TEXT,
        probe_network_name TEXT,
        measured_at TEXT NOT NULL,
        runtime REAL,
        blocking TEXT,
        accessible INTEGER,
        blocking_method TEXT,
        fingerprint_id TEXT,
        anomaly INTEGER NOT NULL DEFAULT 0,
        confirmation INTEGER NOT NULL DEFAULT 0,
        control_failure TEXT,
        json TEXT NOT NULL
    )""",
    "CREATE INDEX measurements_measured_at ON measurements (measured_at)",
    "CREATE INDEX measurements_vantage_url_time ON measurements (vantage_id, url, measured_at)",
    "CREATE INDEX measurements_url_time ON measurements (url, measured_at)",
    "CREATE INDEX measurements_target_time ON measurements (target_id, measured_at)",
    "CREATE INDEX measurements_blocking ON measurements (blocking)",
    "CREATE INDEX measurements_blocking_method ON measurements (blocking_method)",
    """CREATE TABLE target_state (
        vantage_id TEXT NOT NULL,
        url TEXT NOT NULL,
        target_id TEXT REFERENCES targets(id),
        state TEXT NOT NULL,
        method TEXT,
        since TEXT NOT NULL,
        last_change TEXT NOT NULL,
        last_measured_at TEXT NOT NULL,
        last_uid TEXT REFERENCES measurements(uid),
        probe_asn TEXT,
        probe_cc TEXT,
        streak INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (vantage_id, url)
    )""",
    "CREATE INDEX target_state_state ON target_state (state)",
    """CREATE TABLE state_transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vantage_id TEXT NOT NULL,
        url TEXT NOT NULL,
        target_id TEXT REFERENCES targets(id),
        from_state TEXT,
        to_state TEXT NOT NULL,
        from_method TEXT,
        method TEXT,
        at TEXT NOT NULL,
        measurement_uid TEXT REFERENCES measurements(uid)
    )""",
    "CREATE INDEX state_transitions_url_at ON state_transitions (url, at)",
    "CREATE INDEX state_transitions_target_at ON state_transitions (target_id, at)",
    "CREATE INDEX state_transitions_at ON state_transitions (at)",
    """CREATE TABLE spool (
        uid TEXT PRIMARY KEY REFERENCES measurements(uid),
        queued_at TEXT NOT NULL
    )""",
)

# Version 2: the list a measurement and a state belong to, so `status --list` and reports need
# no join with targets (a collector may not have them); filled from the stored JSON.
_SCHEMA_2 = (
    "ALTER TABLE measurements ADD COLUMN list_name TEXT",
    "UPDATE measurements SET list_name = json_extract(json, '$.annotations.list')",
    "ALTER TABLE target_state ADD COLUMN list_name TEXT",
    """UPDATE target_state SET list_name = (
        SELECT list_name FROM measurements WHERE measurements.uid = target_state.last_uid)""",
    "CREATE INDEX target_state_list ON target_state (list_name)",
)

# Version 4: a measurement the collector refused for good stays in the spool as 'parked', with
# the collector's reason, instead of leaving it (and its reason living only in a log file).
_SCHEMA_4 = (
    "ALTER TABLE spool ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'",
    "ALTER TABLE spool ADD COLUMN reason TEXT",
    "ALTER TABLE spool ADD COLUMN parked_at TEXT",
    "CREATE INDEX spool_status_queued ON spool (status, queued_at)",
)

# Version 5: /metrics counts measurements by vantage and method at every scrape; this index
# answers that without reading the rows (measured: 600 ms -> 21 ms on 200,000 measurements).
_SCHEMA_5 = (
    "CREATE INDEX measurements_vantage_method ON measurements (vantage_id, blocking_method)",
)

# Version 6: which lists and targets each URL belongs to. A state stays one per (vantage, URL)
# (one measurement, one state); a URL in two lists is attributed to both through this relation,
# filled by save_targets and here from the targets already saved.
_MEMBERSHIP_BACKFILL = (
    "INSERT INTO target_memberships (url, list_name, target_id) "
    "SELECT DISTINCT CASE u.type WHEN 'object' THEN json_extract(u.value, '$.url') "
    "ELSE u.value END, COALESCE(t.list_name, ''), t.id FROM targets t, json_each(t.urls) u "
    "WHERE u.type = 'text' OR (u.type = 'object' AND json_extract(u.value, '$.url') IS NOT NULL)")
_SCHEMA_6 = (
    """CREATE TABLE target_memberships (
        url TEXT NOT NULL,
        list_name TEXT NOT NULL,
        target_id TEXT NOT NULL REFERENCES targets(id),
        PRIMARY KEY (url, list_name, target_id)
    )""",
    "CREATE INDEX target_memberships_list_url ON target_memberships (list_name, url)",
    "CREATE INDEX target_memberships_target ON target_memberships (target_id)",
    _MEMBERSHIP_BACKFILL,
)

# Version 9: a round whose measurements cannot be judged (no control helper, failing controls,
# measurements not stored) is "degraded"; the one-line reason is kept with the run.
_SCHEMA_9 = (
    "ALTER TABLE runs ADD COLUMN reason TEXT",
)
# Version 8: the k-of-n record of a (vantage, url)'s latest verdicts ("x" interfered, "o" fine,
# most recent last; monitor/state.py), from which the `intermittent` state and its share come.
_SCHEMA_8 = ("ALTER TABLE target_state ADD COLUMN recent TEXT",)

# Version 3 was the alert tables; they are now the `alerts` set's version 1
# (monitor/alerts/schema.py), and the numbers of the others stay as released.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, targets, measurements, target_state, state_transitions, spool",
              _SCHEMA_1),
    Migration(2, "list_name on measurements and target_state", _SCHEMA_2),
    Migration(4, "spool status and reason: uploads the collector refused are parked", _SCHEMA_4),
    Migration(5, "index for /metrics: measurements by vantage and blocking method", _SCHEMA_5),
    Migration(6, "target_memberships: every list and target a URL belongs to", _SCHEMA_6),
    Migration(8, "target_state.recent: the k-of-n record behind the intermittent state", _SCHEMA_8),
    Migration(9, "runs.reason: why a round was degraded", _SCHEMA_9),
)

STORE_MIGRATIONS = MigrationSet("store", MIGRATIONS)

LATEST_VERSION = STORE_MIGRATIONS.latest

# What a store migrates when its opener names no sets: its own tables only. The store cannot
# name the others (alerts and collector sit above it); monitor.schema composes them.
DEFAULT_MIGRATION_SETS: tuple[MigrationSet, ...] = (STORE_MIGRATIONS,)

# SQLite's schema, with the few words PostgreSQL spells differently. The measurements table is
# one table, not partitioned by month: uids must be unique across all time (idempotent uploads),
# and a partitioned table can only enforce uniqueness on keys that include the partition column.
# measured_at is indexed with vantage/url/target instead, which is what the reports range over.
_REWRITES = (
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (
        "UPDATE measurements SET list_name = json_extract(json, '$.annotations.list')",
        "UPDATE measurements SET list_name = (json::jsonb -> 'annotations' ->> 'list')",
    ),
    (
        _MEMBERSHIP_BACKFILL,
        "INSERT INTO target_memberships (url, list_name, target_id) "
        "SELECT DISTINCT CASE jsonb_typeof(u.value) WHEN 'object' THEN u.value ->> 'url' "
        "ELSE u.value #>> '{}' END, COALESCE(t.list_name, ''), t.id FROM targets t "
        "CROSS JOIN LATERAL jsonb_array_elements(t.urls::jsonb) AS u(value) "
        "WHERE jsonb_typeof(u.value) = 'string' OR (jsonb_typeof(u.value) = 'object' "
        "AND u.value ->> 'url' IS NOT NULL)",
    ),
)

# The store declares foreign keys to runs, targets and measurements for browsing only;
# PostgreSQL would enforce them, and a collector stores measurements of runs and targets it
# never saw. Other sets' keys (a probe token's probe) are enforced, as they always were.
_STORE_FOREIGN_KEY = re.compile(r"\s+REFERENCES\s+(?:runs|targets|measurements)\s*\(\w+\)")


def postgres_statement(sqlite_statement: str) -> str:
    """A migration statement as PostgreSQL spells it."""
    for old, new in _REWRITES:
        sqlite_statement = sqlite_statement.replace(old, new)
    return _STORE_FOREIGN_KEY.sub("", sqlite_statement)
