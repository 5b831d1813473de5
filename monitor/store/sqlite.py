"""The Store on SQLite (sqlite-utils): WAL, one transaction per write, keyset-paged reads."""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from monitor.store.base import (
    DecideState,
    SavedWithState,
    StateDecisionLike,
    StoreError,
    TimeBound,
)
from monitor.store.migrations import LATEST_VERSION, VERSION_TABLE, pending_migrations
from monitor.store.paging import page_measurements
from monitor.store.rows import (
    MEASUREMENT_COLUMNS,
    STATE_COLUMNS,
    TRANSITION_COLUMNS,
    as_store_row,
    measurement_row,
    store_time,
)

# Seconds a writer waits for another process's transaction (blockmon status during a run).
_BUSY_TIMEOUT_MS = 10_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _target_record(target: Mapping[str, Any] | Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(target) and not isinstance(target, type):
        target = dataclasses.asdict(target)
    if not isinstance(target, Mapping):
        raise TypeError(f"save_targets takes dicts or dataclasses, not {type(target).__name__}")
    urls = target.get("urls") or []
    briefing = target.get("briefing")
    return {
        "id": target["id"],
        "name": target.get("name") or target["id"],
        "list_name": target.get("list_name") or target.get("list"),
        "category_code": target.get("category_code"),
        "urls": json.dumps(list(urls), ensure_ascii=False),
        "briefing": None if briefing is None else json.dumps(briefing, ensure_ascii=False),
    }


class SQLiteStore:
    """Store on one SQLite file. Not thread-safe: use it from one thread at a time
    (monitor.store.writer.StoreWriter does that for async code)."""

    def __init__(self, path: str | Path, *, spool: bool = False,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = Path(path)
        self.spool = spool
        self.clock = clock
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE) so that
            # each write method is exactly one transaction. check_same_thread=False lets the
            # writer thread use a store opened elsewhere; one thread at a time still holds.
            connection = sqlite3.connect(str(self.path), isolation_level=None,
                                         check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # Takes effect only on a new file. Measurements are 3-6 KB of JSON: with the default
            # 4 KB pages each row fills a page of its own; 16 KB pages pack them (-25% size).
            connection.execute("PRAGMA page_size = 16384")
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupts.
            connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: cannot open as SQLite database: {error}") from None
        self.db = sqlite_utils.Database(connection)
        self.conn = connection

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ---- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _query(self, sql: str,
               params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()[0]

    # ---- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        if "schema_version" not in self.db.table_names():
            return 0
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return row[0] or 0

    def migrate(self) -> int:
        try:
            tables = set(self.db.table_names())
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a SQLite database ({error})") from None
        if "schema_version" not in tables and "measurements" in tables:
            raise StoreError(f"{self.path}: has a measurements table but no schema_version; "
                             "it was not made by blockmon, refusing to change it")
        with self._transaction():
            self.conn.execute(VERSION_TABLE)
        current = self.schema_version()
        if current > LATEST_VERSION:
            raise StoreError(f"{self.path}: schema version {current} is newer than this "
                             f"blockmon knows ({LATEST_VERSION}); upgrade blockmon")
        for migration in pending_migrations(current):
            with self._transaction() as conn:
                # Another process may have migrated while we waited for the write lock.
                done = conn.execute("SELECT 1 FROM schema_version WHERE version = ?",
                                    (migration.version,)).fetchone()
                if done:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, store_time(self.clock())))
        return self.schema_version()

    # ---- targets and runs -----------------------------------------------------------------

    def save_targets(self, targets: Iterable[Mapping[str, Any] | Any]) -> int:
        records = [_target_record(target) for target in targets]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO targets (id, name, list_name, category_code, urls, briefing) "
                "VALUES (:id, :name, :list_name, :category_code, :urls, :briefing) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                "list_name = excluded.list_name, category_code = excluded.category_code, "
                "urls = excluded.urls, briefing = excluded.briefing", records)
        return len(records)

    def start_run(self, list_name: str, vantage_id: str) -> str:
        started = self.clock()
        run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{list_name}_{secrets.token_hex(4)}"
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, list_name, vantage_id, started_at, status) "
                "VALUES (?, ?, ?, ?, 'running')",
                (run_id, list_name, vantage_id, store_time(started)))
        return run_id

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int]) -> None:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, measured = ?, anomalies = ?, "
                "counts = ? WHERE id = ?",
                (store_time(self.clock()), status, counts.get("measured"),
                 counts.get("anomalies"), json.dumps(dict(counts), sort_keys=True), run_id))
            if cursor.rowcount == 0:
                raise KeyError(f"run {run_id!r} was never started in {self.path}")

    def close_stale_runs(self, vantage_id: str) -> int:
        with self._transaction() as conn:
            return int(conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? "
                "WHERE vantage_id = ? AND status = 'running'",
                (store_time(self.clock()), vantage_id)).rowcount)

    def load_runs(self, *, limit: int = 20,
                  vantage_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE vantage_id = ?", [vantage_id]) if vantage_id else ("", [])
        return self._query(f"SELECT * FROM runs {where} ORDER BY started_at DESC, id DESC "
                           "LIMIT ?", [*params, limit])

    # ---- measurements ---------------------------------------------------------------------

    def _insert_rows(self, conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> int:
        columns = ", ".join(MEASUREMENT_COLUMNS)
        placeholders = ", ".join(f":{column}" for column in MEASUREMENT_COLUMNS)
        queued_at = store_time(self.clock())
        inserted = 0
        for row in rows:
            cursor = conn.execute(
                f"INSERT INTO measurements ({columns}) VALUES ({placeholders}) "
                "ON CONFLICT (uid) DO NOTHING",
                {column: row.get(column) for column in MEASUREMENT_COLUMNS})
            if cursor.rowcount == 1:
                inserted += 1
                if self.spool:
                    conn.execute("INSERT INTO spool (uid, queued_at) VALUES (?, ?) "
                                 "ON CONFLICT (uid) DO NOTHING",
                                 (row["uid"], queued_at))
        return inserted

    def save_measurement(self, measurement: Mapping[str, Any], *, target_id: str | None,
                         run_id: str | None = None, confirmation: int = 0) -> bool:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        with self._transaction() as conn:
            return self._insert_rows(conn, [row]) == 1

    def save_measurement_with_state(
        self, measurement: Mapping[str, Any], *, target_id: str | None, run_id: str | None,
        confirmation: int, decide: DecideState,
    ) -> SavedWithState:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        # BEGIN IMMEDIATE holds the write lock from the read of the state to its write.
        with self._transaction() as conn:
            saved = self._insert_rows(conn, [row]) == 1
            current = self._load_state_in(conn, row["vantage_id"], row["url"])
            if not saved:  # a retried write: its state was decided the first time
                return SavedWithState(False, current, None)
            decision = decide(current, row)
            self._write_state(conn, decision.new_state_row, decision.transition)
        return SavedWithState(True, dict(decision.new_state_row), decision)

    def decide_and_save_state(self, row: Mapping[str, Any],
                              decide: DecideState) -> StateDecisionLike:
        # BEGIN IMMEDIATE holds the write lock from the read of the state to its write.
        with self._transaction() as conn:
            current = self._load_state_in(conn, row["vantage_id"], row["url"])
            decision = decide(current, dict(row))
            self._write_state(conn, decision.new_state_row, decision.transition)
        return decision

    def save_measurements(self, rows: Iterable[Mapping[str, Any]]) -> int:
        prepared = [as_store_row(row) for row in rows]
        with self._transaction() as conn:
            return self._insert_rows(conn, prepared)

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
        return page_measurements(self._query, clauses, params, placeholder="?", order=order,
                                 limit=limit)

    def count_measurements(self, *, since: TimeBound | None = None,
                           until: TimeBound | None = None) -> int:
        clauses, params = self._measurement_filters(since, until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return int(self._scalar(f"SELECT COUNT(*) FROM measurements {where}", params))

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
        return self._query(
            "SELECT s.vantage_id, s.url, s.target_id, "
            "COALESCE(s.list_name, t.list_name) AS list_name, s.state, s.method, s.since, "
            "s.last_change, s.last_measured_at, s.last_uid, s.probe_asn, s.probe_cc, s.streak, "
            "t.name AS target_name, t.category_code "
            f"FROM target_state s LEFT JOIN targets t ON t.id = s.target_id {where} "
            "ORDER BY s.vantage_id, s.target_id, s.url", params)

    def load_state(self, vantage_id: str, url: str) -> dict[str, Any] | None:
        return self._load_state_in(self.conn, vantage_id, url)

    @staticmethod
    def _load_state_in(conn: sqlite3.Connection, vantage_id: str,
                       url: str) -> dict[str, Any] | None:
        cursor = conn.execute("SELECT * FROM target_state WHERE vantage_id = ? AND url = ?",
                              (vantage_id, url))
        found = cursor.fetchone()
        if found is None:
            return None
        return dict(zip([column[0] for column in cursor.description], found, strict=True))

    def save_state(self, state_row: Mapping[str, Any],
                   transition: Mapping[str, Any] | None) -> None:
        with self._transaction() as conn:
            self._write_state(conn, state_row, transition)

    @staticmethod
    def _write_state(conn: sqlite3.Connection, state_row: Mapping[str, Any],
                     transition: Mapping[str, Any] | None) -> None:
        columns = ", ".join(STATE_COLUMNS)
        placeholders = ", ".join(f":{column}" for column in STATE_COLUMNS)
        updates = ", ".join(f"{column} = excluded.{column}" for column in STATE_COLUMNS
                            if column not in ("vantage_id", "url"))
        conn.execute(
            f"INSERT INTO target_state ({columns}) VALUES ({placeholders}) "
            f"ON CONFLICT (vantage_id, url) DO UPDATE SET {updates}",
            {column: state_row.get(column) for column in STATE_COLUMNS})
        if transition is not None:
            conn.execute(
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
        return self._query(f"SELECT * FROM state_transitions {where} ORDER BY id", params)

    # ---- spool ----------------------------------------------------------------------------

    def spool_pending(self, limit: int) -> list[dict[str, Any]]:
        return self._query(
            "SELECT spool.uid, measurements.json FROM spool "
            "JOIN measurements ON measurements.uid = spool.uid WHERE spool.status = 'pending' "
            "ORDER BY spool.queued_at, spool.uid LIMIT ?", (limit,))

    def mark_uploaded(self, uids: Iterable[str]) -> int:
        removed = 0
        with self._transaction() as conn:
            for uid in uids:
                removed += conn.execute("DELETE FROM spool WHERE uid = ?", (uid,)).rowcount
        return removed

    def spool_backlog(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM spool WHERE status = 'pending'"))

    def park_upload(self, uid: str, reason: str) -> bool:
        with self._transaction() as conn:
            return conn.execute(
                "UPDATE spool SET status = 'parked', reason = ?, parked_at = ? WHERE uid = ?",
                (reason, store_time(self.clock()), uid)).rowcount == 1

    def spool_parked(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM spool WHERE status = 'parked'"))

    def load_parked(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._query(
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
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM spool WHERE uid IN ({doomed})", params)
            deleted = conn.execute(f"DELETE FROM measurements WHERE uid IN ({doomed})",
                                   params).rowcount
            conn.execute("DELETE FROM runs WHERE finished_at < :cutoff AND id NOT IN "
                         "(SELECT DISTINCT run_id FROM measurements WHERE run_id IS NOT NULL)",
                         params)
        return deleted

    def integrity_check(self) -> str:
        """SQLite's verdict on the file: "ok" or the first problem found."""
        return str(self._scalar("PRAGMA integrity_check"))

    def close(self) -> None:
        self.conn.close()


# The collector's backend imports this spelling.
SqliteStore = SQLiteStore
