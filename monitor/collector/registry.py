"""The collector's own tables: enrolled probes, their hashed tokens, enrolment secrets, target lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from monitor.collector.auth import hash_secret, mint_enrolment_secret, mint_token
from monitor.collector.database import Dialect, sql_for, transaction

# Each step runs once, in order; `collector_schema_version` remembers which ran. Kept apart from
# the store's `schema_version` so the two migration sequences never collide.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS probes (
        probe_id TEXT PRIMARY KEY,
        probe_cc TEXT NOT NULL,
        probe_asn TEXT NOT NULL,
        probe_network_name TEXT NOT NULL DEFAULT '',
        registered_at TEXT NOT NULL,
        last_seen_at TEXT,
        software_version TEXT,
        revoked_at TEXT
    );
    CREATE TABLE IF NOT EXISTS probe_tokens (
        token_hash TEXT PRIMARY KEY,
        probe_id TEXT NOT NULL REFERENCES probes(probe_id),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX IF NOT EXISTS probe_tokens_probe ON probe_tokens(probe_id);
    CREATE TABLE IF NOT EXISTS enrolment_secrets (
        secret_hash TEXT PRIMARY KEY,
        vantage_id TEXT,
        note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        uses_left INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS target_list_versions (
        version INTEGER PRIMARY KEY,
        published_at TEXT NOT NULL,
        format TEXT NOT NULL,
        content TEXT NOT NULL,
        schedule TEXT NOT NULL
    );
    """,
)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
STANDING_SECRET_NOTE = "[collector] enrolment_secret"

RegistrationOutcome = Literal[
    "registered", "bad_secret", "vantage_taken", "vantage_mismatch", "vantage_revoked"
]
TokenStatus = Literal["valid", "unknown", "revoked"]


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    probe_id: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    registered_at: str
    last_seen_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class Registration:
    outcome: RegistrationOutcome
    probe_id: str | None = None
    token: str | None = None  # shown once, never stored in clear


@dataclass(frozen=True, slots=True)
class TargetListVersion:
    version: int
    published_at: str
    format: str
    content: str
    schedule: dict[str, Any]


class Registry:
    """Reads and writes the collector tables over one DB-API connection (one per thread)."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def _execute(self, statement: str, parameters: tuple[Any, ...] = ()) -> Any:
        return self.connection.execute(sql_for(self.dialect, statement), parameters)

    def ping(self) -> None:
        self._execute("SELECT 1").fetchone()

    def migrate(self) -> None:
        with transaction(self.connection, self.dialect):
            if self.dialect == "postgres":
                # Two replicas starting together must not both run the same step.
                self._execute("SELECT pg_advisory_xact_lock(7312001)")
            self._execute(
                "CREATE TABLE IF NOT EXISTS collector_schema_version "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            row = self._execute("SELECT MAX(version) FROM collector_schema_version").fetchone()
            applied = row[0] or 0
            for version, script in enumerate(MIGRATIONS, start=1):
                if version <= applied:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    self._execute(statement)
                self._execute(
                    "INSERT INTO collector_schema_version (version, applied_at) VALUES (?, ?)",
                    (version, format_time(datetime.now(UTC))),
                )

    # --- enrolment and tokens -------------------------------------------------------------

    def create_enrolment_secret(
        self,
        *,
        now: datetime,
        valid_for: timedelta = timedelta(days=7),
        uses: int = 1,
        vantage_id: str | None = None,
        note: str = "",
    ) -> str:
        """Mint a secret for the operator to hand to a probe; only its hash is kept."""
        secret = mint_enrolment_secret()
        with transaction(self.connection, self.dialect):
            self._execute(
                "INSERT INTO enrolment_secrets "
                "(secret_hash, vantage_id, note, created_at, expires_at, uses_left) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hash_secret(secret),
                    vantage_id,
                    note,
                    format_time(now),
                    format_time(now + valid_for),
                    uses,
                ),
            )
        return secret

    def ensure_standing_secret(self, secret: str | None, *, now: datetime) -> None:
        """Accept `[collector] enrolment_secret` for any number of probes until it is changed;
        None (the setting removed) retires the standing secret, as a change does.

        Convenient for a small network; `enrol` gives single-use secrets for a larger one.
        """
        with transaction(self.connection, self.dialect):
            self._execute(
                "UPDATE enrolment_secrets SET uses_left = 0 WHERE note = ? AND secret_hash <> ?",
                (STANDING_SECRET_NOTE, "" if secret is None else hash_secret(secret)),
            )
            if secret is None:
                return
            self._execute(
                "INSERT INTO enrolment_secrets "
                "(secret_hash, vantage_id, note, created_at, expires_at, uses_left) "
                "VALUES (?, NULL, ?, ?, ?, ?) ON CONFLICT (secret_hash) DO UPDATE SET "
                "uses_left = excluded.uses_left, expires_at = excluded.expires_at",
                (
                    hash_secret(secret),
                    STANDING_SECRET_NOTE,
                    format_time(now),
                    format_time(now + timedelta(days=3650)),
                    1_000_000_000,
                ),
            )

    def register_probe(self, request: dict[str, str], *, now: datetime) -> Registration:
        """Spend one use of an enrolment secret and give the probe its id and a fresh token."""
        vantage_id = request["vantage_id"]
        stamp = format_time(now)
        with transaction(self.connection, self.dialect):
            # The conditional UPDATE claims a use atomically, so two replicas cannot both spend
            # the last use of a secret.
            claimed = self._execute(
                "UPDATE enrolment_secrets SET uses_left = uses_left - 1 "
                "WHERE secret_hash = ? AND uses_left > 0 AND expires_at > ? "
                "RETURNING vantage_id, created_at",
                (hash_secret(request["enrolment_secret"]), stamp),
            ).fetchone()
            if claimed is None:
                return Registration("bad_secret")
            if claimed[0] is not None and claimed[0] != vantage_id:
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_mismatch")
            existing = self._execute(
                "SELECT revoked_at FROM probes WHERE probe_id = ?", (vantage_id,)
            ).fetchone()
            if existing is not None and existing[0] is None:
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_taken")
            if existing is not None and claimed[1] < existing[0]:
                # The revoked probe itself holds the secrets of before (the standing one too):
                # with them it could simply enrol again and undo the revocation.
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_revoked")
            if existing is None:
                self._execute(
                    "INSERT INTO probes (probe_id, probe_cc, probe_asn, probe_network_name, "
                    "registered_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        vantage_id,
                        request["probe_cc"],
                        request["probe_asn"],
                        request["probe_network_name"],
                        stamp,
                    ),
                )
            else:
                # A revoked vantage comes back only through a new enrolment secret.
                self._execute(
                    "UPDATE probes SET probe_cc = ?, probe_asn = ?, probe_network_name = ?, "
                    "registered_at = ?, revoked_at = NULL WHERE probe_id = ?",
                    (
                        request["probe_cc"],
                        request["probe_asn"],
                        request["probe_network_name"],
                        stamp,
                        vantage_id,
                    ),
                )
            token = mint_token()
            self._execute(
                "INSERT INTO probe_tokens (token_hash, probe_id, created_at) VALUES (?, ?, ?)",
                (hash_secret(token), vantage_id, stamp),
            )
        return Registration("registered", vantage_id, token)

    def _rollback_claim(self, secret: str) -> None:
        # A refused registration must not use up the operator's secret.
        self._execute(
            "UPDATE enrolment_secrets SET uses_left = uses_left + 1 WHERE secret_hash = ?",
            (hash_secret(secret),),
        )

    def authenticate(self, token: str) -> tuple[TokenStatus, ProbeRecord | None]:
        """Find the probe a bearer token belongs to; lookup is by hash, never by the token."""
        row = self._execute(
            "SELECT p.probe_id, p.probe_cc, p.probe_asn, p.probe_network_name, p.registered_at, "
            "p.last_seen_at, p.revoked_at, t.revoked_at "
            "FROM probe_tokens t JOIN probes p ON p.probe_id = t.probe_id WHERE t.token_hash = ?",
            (hash_secret(token),),
        ).fetchone()
        if row is None:
            return "unknown", None
        probe = ProbeRecord(*row[:7])
        if row[6] is not None or row[7] is not None:
            return "revoked", probe
        return "valid", probe

    def revoke_probe(self, probe_id: str, *, now: datetime) -> bool:
        """Revoke a probe and every token it holds; False when no such probe is enrolled."""
        stamp = format_time(now)
        with transaction(self.connection, self.dialect):
            found = self._execute(
                "UPDATE probes SET revoked_at = COALESCE(revoked_at, ?) WHERE probe_id = ?",
                (stamp, probe_id),
            ).rowcount
            self._execute(
                "UPDATE probe_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE probe_id = ?",
                (stamp, probe_id),
            )
        return bool(found)

    def record_check_in(self, probe_id: str, software_version: str | None, *, now: datetime) -> None:
        self._execute(
            "UPDATE probes SET last_seen_at = ?, software_version = COALESCE(?, software_version) "
            "WHERE probe_id = ?",
            (format_time(now), software_version, probe_id),
        )

    def list_probes(self) -> list[ProbeRecord]:
        rows = self._execute(
            "SELECT probe_id, probe_cc, probe_asn, probe_network_name, registered_at, "
            "last_seen_at, revoked_at FROM probes ORDER BY probe_id"
        ).fetchall()
        return [ProbeRecord(*row) for row in rows]

    # --- target lists handed out at check-in ------------------------------------------------

    def publish_target_list(
        self, content: str, *, format: str, schedule: dict[str, Any], now: datetime
    ) -> int:
        with transaction(self.connection, self.dialect):
            if self.dialect == "postgres":
                self._execute("LOCK TABLE target_list_versions IN EXCLUSIVE MODE")
            row = self._execute("SELECT MAX(version) FROM target_list_versions").fetchone()
            version = (row[0] or 0) + 1
            self._execute(
                "INSERT INTO target_list_versions (version, published_at, format, content, schedule) "
                "VALUES (?, ?, ?, ?, ?)",
                (version, format_time(now), format, content, json.dumps(schedule, sort_keys=True)),
            )
        return int(version)

    def latest_target_list(self) -> TargetListVersion | None:
        row = self._execute(
            "SELECT version, published_at, format, content, schedule FROM target_list_versions "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return TargetListVersion(row[0], row[1], row[2], row[3], json.loads(row[4]))
