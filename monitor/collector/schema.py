"""The collector's own tables (probes, tokens, enrolment secrets, target lists), and what its
database holds."""

from __future__ import annotations

from monitor.schema import PROBE_DATABASE
from monitor.store.migrations import Migration, MigrationSet

# Version 1 was `collector_schema_version` 1 in the releases before named sets; the ledger
# adopts it. IF NOT EXISTS as released: never edit a released migration.
_COLLECTOR_1 = (
    """CREATE TABLE IF NOT EXISTS probes (
        probe_id TEXT PRIMARY KEY,
        probe_cc TEXT NOT NULL,
        probe_asn TEXT NOT NULL,
        probe_network_name TEXT NOT NULL DEFAULT '',
        registered_at TEXT NOT NULL,
        last_seen_at TEXT,
        software_version TEXT,
        revoked_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS probe_tokens (
        token_hash TEXT PRIMARY KEY,
        probe_id TEXT NOT NULL REFERENCES probes(probe_id),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS probe_tokens_probe ON probe_tokens(probe_id)",
    """CREATE TABLE IF NOT EXISTS enrolment_secrets (
        secret_hash TEXT PRIMARY KEY,
        vantage_id TEXT,
        note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        uses_left INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS target_list_versions (
        version INTEGER PRIMARY KEY,
        published_at TEXT NOT NULL,
        format TEXT NOT NULL,
        content TEXT NOT NULL,
        schedule TEXT NOT NULL
    )""",
)

COLLECTOR_MIGRATIONS = MigrationSet("collector", (
    Migration(1, "probes, probe_tokens, enrolment_secrets, target_list_versions", _COLLECTOR_1),
))

# A collector's database: the probe's tables (uploaded measurements, states, alerts) and its own.
COLLECTOR_DATABASE: tuple[MigrationSet, ...] = (*PROBE_DATABASE, COLLECTOR_MIGRATIONS)
