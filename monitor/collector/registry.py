"""The collector's own tables: enrolled probes, their hashed tokens, enrolment secrets, target lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from monitor.collector.auth import hash_secret, mint_enrolment_secret, mint_token
from monitor.collector.schema import COLLECTOR_MIGRATIONS
from monitor.store import ledger
from monitor.store.database import Database

# Serialises publishers of target lists, across replicas sharing one PostgreSQL database.
_TARGET_LIST_LOCK = 7312002

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_PROBE_COLUMNS = ("p.probe_id, p.probe_cc, p.probe_asn, p.probe_network_name, p.registered_at, "
                  "p.last_seen_at, p.revoked_at")
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
    """Reads and writes the collector tables through a store's Database (one per thread).

        registry = Registry(store.database)
        registry.authenticate(token)
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def _row(self, statement: str, parameters: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        found = self.database.rows(statement, parameters)
        return found[0] if found else None

    def ping(self) -> None:
        self.database.scalar("SELECT 1")

    def migrate(self) -> None:
        """Creates or upgrades the collector's own tables (the `collector` migration set)."""
        ledger.migrate(self.database, (COLLECTOR_MIGRATIONS,),
                       now=format_time(datetime.now(UTC)))

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
        with self.database.transaction():
            self.database.execute(
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
        with self.database.transaction():
            self.database.execute(
                "UPDATE enrolment_secrets SET uses_left = 0 WHERE note = ? AND secret_hash <> ?",
                (STANDING_SECRET_NOTE, "" if secret is None else hash_secret(secret)),
            )
            if secret is None:
                return
            self.database.execute(
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
        with self.database.transaction():
            # The conditional UPDATE claims a use atomically, so two replicas cannot both spend
            # the last use of a secret.
            claimed = self._row(
                "UPDATE enrolment_secrets SET uses_left = uses_left - 1 "
                "WHERE secret_hash = ? AND uses_left > 0 AND expires_at > ? "
                "RETURNING vantage_id, created_at",
                (hash_secret(request["enrolment_secret"]), stamp),
            )
            if claimed is None:
                return Registration("bad_secret")
            if claimed["vantage_id"] is not None and claimed["vantage_id"] != vantage_id:
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_mismatch")
            existing = self._row(
                "SELECT revoked_at FROM probes WHERE probe_id = ?", (vantage_id,)
            )
            if existing is not None and existing["revoked_at"] is None:
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_taken")
            if existing is not None and claimed["created_at"] < existing["revoked_at"]:
                # The revoked probe itself holds the secrets of before (the standing one too):
                # with them it could simply enrol again and undo the revocation.
                self._rollback_claim(request["enrolment_secret"])
                return Registration("vantage_revoked")
            if existing is None:
                self.database.execute(
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
                self.database.execute(
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
            self.database.execute(
                "INSERT INTO probe_tokens (token_hash, probe_id, created_at) VALUES (?, ?, ?)",
                (hash_secret(token), vantage_id, stamp),
            )
        return Registration("registered", vantage_id, token)

    def _rollback_claim(self, secret: str) -> None:
        # A refused registration must not use up the operator's secret.
        self.database.execute(
            "UPDATE enrolment_secrets SET uses_left = uses_left + 1 WHERE secret_hash = ?",
            (hash_secret(secret),),
        )

    def authenticate(self, token: str) -> tuple[TokenStatus, ProbeRecord | None]:
        """Find the probe a bearer token belongs to; lookup is by hash, never by the token."""
        row = self._row(
            f"SELECT {_PROBE_COLUMNS}, t.revoked_at AS token_revoked_at "
            "FROM probe_tokens t JOIN probes p ON p.probe_id = t.probe_id WHERE t.token_hash = ?",
            (hash_secret(token),),
        )
        if row is None:
            return "unknown", None
        token_revoked_at = row.pop("token_revoked_at")
        probe = ProbeRecord(**row)
        if probe.revoked_at is not None or token_revoked_at is not None:
            return "revoked", probe
        return "valid", probe

    def revoke_probe(self, probe_id: str, *, now: datetime) -> bool:
        """Revoke a probe and every token it holds; False when no such probe is enrolled."""
        stamp = format_time(now)
        with self.database.transaction():
            found = self.database.execute(
                "UPDATE probes SET revoked_at = COALESCE(revoked_at, ?) WHERE probe_id = ?",
                (stamp, probe_id),
            )
            self.database.execute(
                "UPDATE probe_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE probe_id = ?",
                (stamp, probe_id),
            )
        return bool(found)

    def record_check_in(self, probe_id: str, software_version: str | None, *, now: datetime) -> None:
        self.database.execute(
            "UPDATE probes SET last_seen_at = ?, software_version = COALESCE(?, software_version) "
            "WHERE probe_id = ?",
            (format_time(now), software_version, probe_id),
        )

    def list_probes(self) -> list[ProbeRecord]:
        rows = self.database.rows(f"SELECT {_PROBE_COLUMNS} FROM probes p ORDER BY p.probe_id")
        return [ProbeRecord(**row) for row in rows]

    # --- target lists handed out at check-in ------------------------------------------------

    def publish_target_list(
        self, content: str, *, format: str, schedule: dict[str, Any], now: datetime
    ) -> int:
        with self.database.transaction(lock=_TARGET_LIST_LOCK):
            version = (self.database.scalar("SELECT MAX(version) FROM target_list_versions")
                       or 0) + 1
            self.database.execute(
                "INSERT INTO target_list_versions (version, published_at, format, content, schedule) "
                "VALUES (?, ?, ?, ?, ?)",
                (version, format_time(now), format, content, json.dumps(schedule, sort_keys=True)),
            )
        return int(version)

    def latest_target_list(self) -> TargetListVersion | None:
        row = self._row(
            "SELECT version, published_at, format, content, schedule FROM target_list_versions "
            "ORDER BY version DESC LIMIT 1"
        )
        if row is None:
            return None
        return TargetListVersion(**{**row, "schedule": json.loads(row["schedule"])})
