"""The Store on SQLite (sqlite-utils): WAL, one transaction per write, keyset-paged reads."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from monitor.store import ledger
from monitor.store.base import (
    DecideState,
    SavedWithState,
    StateDecisionLike,
    StoreError,
    TimeBound,
    decision_order,
    utc_now,
)
from monitor.store.database import connect_sqlite
from monitor.store.migrations import DEFAULT_MIGRATION_SETS, MigrationSet
from monitor.store.paging import page_measurements
from monitor.store.rows import (
    MEASUREMENT_COLUMNS,
    STATE_COLUMNS,
    TRANSITION_COLUMNS,
    as_store_row,
    measurement_row,
    membership_rows,
    store_time,
    target_row,
)


class SQLiteStore:
    """Store on one SQLite file. Not thread-safe: use it from one thread at a time
    (monitor.store.writer.StoreWriter does that for async code).

    `migration_sets` are what migrate() applies: the store's own by default; a probe's and a
    collector's databases get more (monitor.schema).
    """

    def __init__(self, path: str | Path, *, spool: bool = False,
                 clock: Callable[[], datetime] = utc_now,
                 migration_sets: Sequence[MigrationSet] = DEFAULT_MIGRATION_SETS,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.spool = spool
        self.clock = clock
        self.migration_sets = tuple(migration_sets)
        self.database = connect_sqlite(self.path, read_only=read_only)
        self.conn: sqlite3.Connection = self.database.connection
        self.db = sqlite_utils.Database(self.conn)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ---- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        return ledger.schema_version(self.database)

    def migrate(self, migration_sets: Sequence[MigrationSet] | None = None) -> int:
        try:
            ledger.migrate(self.database, self.migration_sets if migration_sets is None
                           else migration_sets, now=store_time(self.clock()))
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):
                raise
            raise StoreError(f"{self.path}: not a SQLite database ({error})") from None
        return self.schema_version()

    # ---- targets and runs -----------------------------------------------------------------

    def save_targets(self, targets: Iterable[Mapping[str, Any] | Any]) -> int:
        records = [target_row(target) for target in targets]
        with self.database.transaction():
            self.conn.executemany(
                "INSERT INTO targets (id, name, list_name, category_code, urls, briefing) "
                "VALUES (:id, :name, :list_name, :category_code, :urls, :briefing) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                "list_name = excluded.list_name, category_code = excluded.category_code, "
                "urls = excluded.urls, briefing = excluded.briefing", records)
            self.conn.executemany("DELETE FROM target_memberships WHERE target_id = :id", records)
            self.conn.executemany(
                "INSERT INTO target_memberships (url, list_name, target_id) "
                "VALUES (:url, :list_name, :target_id) ON CONFLICT DO NOTHING",
                [row for record in records for row in membership_rows(record)])
        return len(records)

    def start_run(self, list_name: str, vantage_id: str) -> str:
        started = self.clock()
        run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{list_name}_{secrets.token_hex(4)}"
        with self.database.transaction():
            self.conn.execute(
                "INSERT INTO runs (id, list_name, vantage_id, started_at, status) "
                "VALUES (?, ?, ?, ?, 'running')",
                (run_id, list_name, vantage_id, store_time(started)))
        return run_id

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int],
                   reason: str | None = None) -> None:
        with self.database.transaction():
            cursor = self.conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, measured = ?, anomalies = ?, "
                "counts = ?, reason = ? WHERE id = ?",
                (store_time(self.clock()), status, counts.get("measured"),
                 counts.get("anomalies"), json.dumps(dict(counts), sort_keys=True), reason, run_id))
            if cursor.rowcount == 0:
                raise KeyError(f"run {run_id!r} was never started in {self.path}")

    def close_stale_runs(self, vantage_id: str) -> int:
        with self.database.transaction():
            return int(self.conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? "
                "WHERE vantage_id = ? AND status = 'running'",
                (store_time(self.clock()), vantage_id)).rowcount)

    def load_runs(self, *, limit: int = 20,
                  vantage_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE vantage_id = ?", [vantage_id]) if vantage_id else ("", [])
        return self.database.rows(f"SELECT * FROM runs {where} ORDER BY started_at DESC, id DESC "
                           "LIMIT ?", [*params, limit])

    # ---- measurements ---------------------------------------------------------------------

    def _insert_rows(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        columns = ", ".join(MEASUREMENT_COLUMNS)
        placeholders = ", ".join(f":{column}" for column in MEASUREMENT_COLUMNS)
        queued_at = store_time(self.clock())
        inserted = []
        for row in rows:
            cursor = self.conn.execute(
                f"INSERT INTO measurements ({columns}) VALUES ({placeholders}) "
                "ON CONFLICT (uid) DO NOTHING",
                {column: row.get(column) for column in MEASUREMENT_COLUMNS})
            if cursor.rowcount == 1:
                inserted.append(row)
                if self.spool:
                    self.conn.execute("INSERT INTO spool (uid, queued_at) VALUES (?, ?) "
                                 "ON CONFLICT (uid) DO NOTHING",
                                 (row["uid"], queued_at))
        return inserted

    def save_measurement(self, measurement: Mapping[str, Any], *, target_id: str | None,
                         run_id: str | None = None, confirmation: int = 0) -> bool:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        with self.database.transaction():
            return len(self._insert_rows([row])) == 1

    def save_measurement_with_state(
        self, measurement: Mapping[str, Any], *, target_id: str | None, run_id: str | None,
        confirmation: int, decide: DecideState,
    ) -> SavedWithState:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        # BEGIN IMMEDIATE holds the write lock from the read of the state to its write.
        with self.database.transaction():
            saved = len(self._insert_rows([row])) == 1
            current = self.load_state(row["vantage_id"], row["url"])
            if not saved:  # a retried write: its state was decided the first time
                return SavedWithState(False, current, None)
            decision = decide(current, row)
            self._write_state(decision.new_state_row, decision.transition)
        return SavedWithState(True, dict(decision.new_state_row), decision)

    def decide_and_save_state(self, row: Mapping[str, Any],
                              decide: DecideState) -> StateDecisionLike:
        # BEGIN IMMEDIATE holds the write lock from the read of the state to its write.
        with self.database.transaction():
            current = self.load_state(row["vantage_id"], row["url"])
            decision = decide(current, dict(row))
            self._write_state(decision.new_state_row, decision.transition)
        return decision

    def save_measurements(self, rows: Iterable[Mapping[str, Any]]) -> int:
        prepared = [as_store_row(row) for row in rows]
        with self.database.transaction():
            return len(self._insert_rows(prepared))

    def save_measurements_with_states(self, rows: Iterable[Mapping[str, Any]],
                                      decide: DecideState) -> list[str]:
        prepared = [as_store_row(row) for row in rows]
        with self.database.transaction():
            new_rows = self._insert_rows(prepared)
            for row in sorted(new_rows, key=decision_order):
                self.decide_and_save_state(row, decide)
        return [row["uid"] for row in new_rows]

    def load_measurement(self, uid: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT json FROM measurements WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _measurement_filters(self, since: TimeBound | None, until: TimeBound | None,
                             **equal: str | None) -> tuple[list[str], list[Any]]:
        clauses, params = [], []
        if since is not None:
            clauses.append("measured_at >= ?")
            params.append(store_time(since))
        if until is not None:
            clauses.append("measured_at < ?")
            params.append(store_time(until))
        for column, value in equal.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return clauses, params

    def iter_measurements(self, *, since: TimeBound | None = None, until: TimeBound | None = None,
                          vantage_id: str | None = None, target_id: str | None = None,
                          url: str | None = None, order: Literal["asc", "desc"] = "asc",
                          limit: int | None = None) -> Iterator[dict[str, Any]]:
        clauses, params = self._measurement_filters(
            since, until, vantage_id=vantage_id, target_id=target_id, url=url)
        return page_measurements(self.database.rows, clauses, params, placeholder="?", order=order,
                                 limit=limit)

    def count_measurements(self, *, since: TimeBound | None = None,
                           until: TimeBound | None = None) -> int:
        clauses, params = self._measurement_filters(since, until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return int(self.database.scalar(f"SELECT COUNT(*) FROM measurements {where}", params))

    # ---- state ----------------------------------------------------------------------------

    def load_states(self, *, list_name: str | None = None, state: str | None = None,
                    category: str | None = None,
                    vantage_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        for expression, value in (
            ("COALESCE(s.list_name, t.list_name)", list_name), ("s.state", state),
            ("t.category_code", category), ("s.vantage_id", vantage_id),
        ):
            if value is not None:
                clauses.append(f"{expression} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.database.rows(
            "SELECT s.vantage_id, s.url, s.target_id, "
            "COALESCE(s.list_name, t.list_name) AS list_name, s.state, s.method, s.since, "
            "s.last_change, s.last_measured_at, s.last_uid, s.probe_asn, s.probe_cc, s.streak, "
            "t.name AS target_name, t.category_code "
            f"FROM target_state s LEFT JOIN targets t ON t.id = s.target_id {where} "
            "ORDER BY s.vantage_id, s.target_id, s.url", params)

    def load_state(self, vantage_id: str, url: str) -> dict[str, Any] | None:
        found = self.database.rows(
            "SELECT * FROM target_state WHERE vantage_id = ? AND url = ?", (vantage_id, url))
        return found[0] if found else None

    def save_state(self, state_row: Mapping[str, Any],
                   transition: Mapping[str, Any] | None) -> None:
        with self.database.transaction():
            self._write_state(state_row, transition)

    def _write_state(self, state_row: Mapping[str, Any],
                     transition: Mapping[str, Any] | None) -> None:
        columns = ", ".join(STATE_COLUMNS)
        placeholders = ", ".join(f":{column}" for column in STATE_COLUMNS)
        updates = ", ".join(f"{column} = excluded.{column}" for column in STATE_COLUMNS
                            if column not in ("vantage_id", "url"))
        self.conn.execute(
            f"INSERT INTO target_state ({columns}) VALUES ({placeholders}) "
            f"ON CONFLICT (vantage_id, url) DO UPDATE SET {updates}",
            {column: state_row.get(column) for column in STATE_COLUMNS})
        if transition is not None:
            self.conn.execute(
                f"INSERT INTO state_transitions ({', '.join(TRANSITION_COLUMNS)}) VALUES "
                f"({', '.join(':' + column for column in TRANSITION_COLUMNS)})",
                {column: transition.get(column) for column in TRANSITION_COLUMNS})

    def load_transitions(self, *, url: str | None = None, target_id: str | None = None,
                         vantage_id: str | None = None, since: TimeBound | None = None,
                         until: TimeBound | None = None,
                         after_id: int | None = None) -> list[dict[str, Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("url", url), ("target_id", target_id),
                              ("vantage_id", vantage_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(store_time(since))
        if until is not None:
            clauses.append("at < ?")
            params.append(store_time(until))
        if after_id is not None:
            clauses.append("id > ?")
            params.append(after_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.database.rows(f"SELECT * FROM state_transitions {where} ORDER BY id", params)

    # ---- spool ----------------------------------------------------------------------------

    def spool_pending(self, limit: int) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT spool.uid, measurements.json FROM spool "
            "JOIN measurements ON measurements.uid = spool.uid WHERE spool.status = 'pending' "
            "ORDER BY spool.queued_at, spool.uid LIMIT ?", (limit,))

    def mark_uploaded(self, uids: Iterable[str]) -> int:
        removed = 0
        with self.database.transaction():
            for uid in uids:
                removed += self.conn.execute("DELETE FROM spool WHERE uid = ?", (uid,)).rowcount
        return removed

    def spool_backlog(self) -> int:
        return int(self.database.scalar("SELECT COUNT(*) FROM spool WHERE status = 'pending'"))

    def park_upload(self, uid: str, reason: str) -> bool:
        with self.database.transaction():
            return self.conn.execute(
                "UPDATE spool SET status = 'parked', reason = ?, parked_at = ? WHERE uid = ?",
                (reason, store_time(self.clock()), uid)).rowcount == 1

    def spool_parked(self) -> int:
        return int(self.database.scalar("SELECT COUNT(*) FROM spool WHERE status = 'parked'"))

    def unpark_uploads(self, reason_contains: str, parked_before: str) -> int:
        with self.database.transaction():
            return int(self.conn.execute(
                "UPDATE spool SET status = 'pending' WHERE status = 'parked' "
                "AND instr(reason, ?) > 0 AND parked_at < ?",
                (reason_contains, parked_before)).rowcount)

    def load_parked(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT uid, queued_at, parked_at, reason FROM spool WHERE status = 'parked' "
            "ORDER BY parked_at DESC, uid LIMIT ?", (limit,))

    # ---- upkeep ---------------------------------------------------------------------------

    def prune(self, older_than: TimeBound) -> int:
        # Measurements that are evidence of a current state or a transition are kept.
        doomed = (
            "SELECT uid FROM measurements WHERE measured_at < :cutoff "
            "AND uid NOT IN (SELECT last_uid FROM target_state WHERE last_uid IS NOT NULL) "
            "AND uid NOT IN (SELECT measurement_uid FROM state_transitions "
            "WHERE measurement_uid IS NOT NULL) "
            # Not yet uploaded: deleting it would lose it for the collector too.
            "AND uid NOT IN (SELECT uid FROM spool WHERE status = 'pending')")
        params = {"cutoff": store_time(older_than)}
        with self.database.transaction():
            self.conn.execute(f"DELETE FROM spool WHERE uid IN ({doomed})", params)
            deleted = self.conn.execute(f"DELETE FROM measurements WHERE uid IN ({doomed})",
                                   params).rowcount
            self.conn.execute("DELETE FROM runs WHERE finished_at < :cutoff AND id NOT IN "
                         "(SELECT DISTINCT run_id FROM measurements WHERE run_id IS NOT NULL)",
                         params)
        return deleted

    def integrity_check(self) -> str:
        """SQLite's verdict on the file: "ok" or the first problem found."""
        return str(self.database.scalar("PRAGMA integrity_check"))

    def close(self) -> None:
        self.database.close()
