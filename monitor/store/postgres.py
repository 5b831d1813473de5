"""The Store protocol on PostgreSQL (psycopg 3): the same tables and columns as SQLite."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg

from monitor.store import ledger
from monitor.store.base import (
    DecideState,
    SavedWithState,
    StateDecisionLike,
    TimeBound,
    decision_order,
    utc_now,
)
from monitor.store.database import connect_postgres
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


def _time_or_none(bound: TimeBound | None) -> str | None:
    return None if bound is None else store_time(bound)


class PostgresStore:
    """A blocking store on one psycopg connection; use one instance per thread.

    `migration_sets` are what migrate() applies, as for SQLiteStore.
    """

    def __init__(self, database_url: str, *, spool: bool = False,
                 clock: Callable[[], datetime] = utc_now,
                 migration_sets: Sequence[MigrationSet] = DEFAULT_MIGRATION_SETS) -> None:
        self.database_url = database_url
        self.spool = spool
        self.clock = clock
        self.migration_sets = tuple(migration_sets)
        self._staging_ready = False
        self.database = connect_postgres(database_url)
        self.connection: psycopg.Connection[dict[str, Any]] = self.database.connection

    # ---- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return ledger.schema_version(self.database)

    def migrate(self, migration_sets: Sequence[MigrationSet] | None = None) -> int:
        ledger.migrate(self.database, self.migration_sets if migration_sets is None
                       else migration_sets, now=store_time(self.clock()))
        return self.schema_version()

    # ---- targets and runs ------------------------------------------------------------------

    def save_targets(self, targets: Iterable[Mapping[str, Any] | Any]) -> int:
        rows = [target_row(target) for target in targets]
        if not rows:
            return 0
        with self.database.transaction(), self.connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO targets (id, name, list_name, category_code, urls, briefing) "
                "VALUES (%(id)s, %(name)s, %(list_name)s, %(category_code)s, %(urls)s, "
                "%(briefing)s) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, list_name = EXCLUDED.list_name, "
                "category_code = EXCLUDED.category_code, urls = EXCLUDED.urls, "
                "briefing = EXCLUDED.briefing",
                rows,
            )
            cursor.executemany("DELETE FROM target_memberships WHERE target_id = %(id)s", rows)
            memberships = [row for record in rows for row in membership_rows(record)]
            if memberships:
                cursor.executemany(
                    "INSERT INTO target_memberships (url, list_name, target_id) VALUES "
                    "(%(url)s, %(list_name)s, %(target_id)s) ON CONFLICT DO NOTHING",
                    memberships)
        return len(rows)

    def start_run(self, list_name: str, vantage_id: str) -> str:
        started = self.clock()
        started_at = store_time(started)
        run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{list_name}_{secrets.token_hex(4)}"
        self.connection.execute(
            "INSERT INTO runs (id, list_name, vantage_id, started_at, status) "
            "VALUES (%s, %s, %s, %s, 'running')",
            (run_id, list_name, vantage_id, started_at),
        )
        return run_id

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int],
                   reason: str | None = None) -> None:
        cursor = self.connection.execute(
            "UPDATE runs SET finished_at = %s, status = %s, measured = %s, anomalies = %s, "
            "counts = %s, reason = %s WHERE id = %s",
            (
                store_time(self.clock()), status, counts.get("measured"),
                counts.get("anomalies"), json.dumps(dict(counts), sort_keys=True), reason, run_id,
            ),
        )
        if cursor.rowcount == 0:
            raise KeyError(f"run {run_id!r} was never started in {self.database.description}")

    def close_stale_runs(self, vantage_id: str) -> int:
        cursor = self.connection.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = %s "
            "WHERE vantage_id = %s AND status = 'running'",
            (store_time(self.clock()), vantage_id),
        )
        return int(cursor.rowcount)

    def load_runs(self, *, limit: int = 20, vantage_id: str | None = None) -> list[dict[str, Any]]:
        return self.connection.execute(
            "SELECT * FROM runs WHERE (%s::text IS NULL OR vantage_id = %s) "
            "ORDER BY started_at DESC, id DESC LIMIT %s",
            (vantage_id, vantage_id, limit),
        ).fetchall()

    # ---- measurements ----------------------------------------------------------------------

    def save_measurement(self, measurement: Mapping[str, Any], *, target_id: str | None,
                         run_id: str | None = None, confirmation: int = 0) -> bool:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        return self.save_measurements([row]) == 1

    def save_measurement_with_state(
        self, measurement: Mapping[str, Any], *, target_id: str | None, run_id: str | None,
        confirmation: int, decide: DecideState,
    ) -> SavedWithState:
        row = measurement_row(measurement, target_id=target_id, run_id=run_id,
                              confirmation=confirmation)
        columns = ", ".join(MEASUREMENT_COLUMNS)
        with self.database.transaction():
            inserted = self.connection.execute(
                f"INSERT INTO measurements ({columns}) VALUES "
                f"({', '.join(['%s'] * len(MEASUREMENT_COLUMNS))}) "
                "ON CONFLICT (uid) DO NOTHING RETURNING uid",
                [row.get(column) for column in MEASUREMENT_COLUMNS],
            ).fetchone()
            # FOR UPDATE: another writer of the same (vantage, url) waits until we commit, so
            # no decision is taken on a state that is about to change.
            current: dict[str, Any] | None = self.connection.execute(
                "SELECT * FROM target_state WHERE vantage_id = %s AND url = %s FOR UPDATE",
                (row["vantage_id"], row["url"]),
            ).fetchone()
            if inserted is None:
                return SavedWithState(False, current, None)
            if self.spool:
                self.connection.execute(
                    "INSERT INTO spool (uid, queued_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (row["uid"], store_time(self.clock())),
                )
            decision = decide(current, row)
            self._write_state(decision.new_state_row, decision.transition)
        return SavedWithState(True, dict(decision.new_state_row), decision)

    def decide_and_save_state(self, row: Mapping[str, Any],
                              decide: DecideState) -> StateDecisionLike:
        # A transaction-scoped lock on the pair: FOR UPDATE alone cannot lock a state row that
        # does not exist yet, and two first measurements would both start from None.
        with self.database.transaction(lock=f"{row['vantage_id']}|{row['url']}"):
            current: dict[str, Any] | None = self.connection.execute(
                "SELECT * FROM target_state WHERE vantage_id = %s AND url = %s",
                (row["vantage_id"], row["url"]),
            ).fetchone()
            decision = decide(current, dict(row))
            self._write_state(decision.new_state_row, decision.transition)
        return decision

    def save_measurements(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """One transaction: COPY into a session-local staging table, then INSERT ... SELECT
        ON CONFLICT DO NOTHING, so re-sent uids are skipped and concurrent writers of one uid
        store it once. COPY is ~2x faster than a multi-row INSERT (benchmarks/bench_ingest.py)."""
        prepared = [as_store_row(row) for row in rows]
        if not prepared:
            return 0
        self._prepare_staging()
        with self.database.transaction():
            return len(self._insert_rows(prepared))

    def save_measurements_with_states(self, rows: Iterable[Mapping[str, Any]],
                                      decide: DecideState) -> list[str]:
        prepared = [as_store_row(row) for row in rows]
        if not prepared:
            return []
        self._prepare_staging()
        # A copy of this batch in flight elsewhere holds its uids until it commits; our insert
        # then finds them stored and decides nothing, so a re-sent batch is never counted twice.
        with self.database.transaction():
            new_uids = set(self._insert_rows(prepared))
            new_rows = [row for row in prepared if row["uid"] in new_uids]
            for row in sorted(new_rows, key=decision_order):
                self.decide_and_save_state(row, decide)
        return [row["uid"] for row in new_rows]

    def _prepare_staging(self) -> None:
        if not self._staging_ready:
            # Temporary: private to this connection, so replicas and threads never collide.
            self.connection.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_measurements "
                "(LIKE measurements INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staging_ready = True

    def _insert_rows(self, prepared: Sequence[Mapping[str, Any]]) -> list[str]:
        """The uids of `prepared` that were new; inside the caller's transaction."""
        columns = ", ".join(MEASUREMENT_COLUMNS)
        with self.connection.cursor() as cursor:
            with cursor.copy(f"COPY incoming_measurements ({columns}) FROM STDIN") as copy:
                for row in prepared:
                    copy.write_row([row.get(column) for column in MEASUREMENT_COLUMNS])
            cursor.execute(
                f"INSERT INTO measurements ({columns}) SELECT {columns} FROM incoming_measurements "
                "ON CONFLICT (uid) DO NOTHING RETURNING uid"
            )
            new_uids = [row["uid"] for row in cursor.fetchall()]
            if self.spool and new_uids:
                queued_at = store_time(self.clock())
                cursor.executemany(
                    "INSERT INTO spool (uid, queued_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(uid, queued_at) for uid in new_uids],
                )
        return new_uids

    def load_measurement(self, uid: str) -> dict[str, Any] | None:
        row = self.connection.execute(
            "SELECT json FROM measurements WHERE uid = %s", (uid,)
        ).fetchone()
        return None if row is None else json.loads(row["json"])

    def iter_measurements(self, *, since: TimeBound | None = None, until: TimeBound | None = None,
                          vantage_id: str | None = None, target_id: str | None = None,
                          url: str | None = None, order: Literal["asc", "desc"] = "asc",
                          limit: int | None = None) -> Iterator[dict[str, Any]]:
        conditions: list[str] = []
        parameters: list[Any] = []
        for clause, value in (
            ("measured_at >= %s", _time_or_none(since)),
            ("measured_at < %s", _time_or_none(until)),
            ("vantage_id = %s", vantage_id),
            ("target_id = %s", target_id),
            ("url = %s", url),
        ):
            if value is not None:
                conditions.append(clause)
                parameters.append(value)
        return page_measurements(
            lambda sql, values: self.connection.execute(sql, values).fetchall(),
            conditions, parameters, placeholder="%s", order=order, limit=limit)

    def count_measurements(self, *, since: TimeBound | None = None,
                           until: TimeBound | None = None) -> int:
        row = self.connection.execute(
            "SELECT COUNT(*) AS n FROM measurements WHERE "
            "(%s::text IS NULL OR measured_at >= %s) AND (%s::text IS NULL OR measured_at < %s)",
            (_time_or_none(since), _time_or_none(since), _time_or_none(until), _time_or_none(until)),
        ).fetchone()
        return int(row["n"]) if row else 0

    # ---- state -----------------------------------------------------------------------------

    def load_states(self, *, list_name: str | None = None, state: str | None = None,
                    category: str | None = None,
                    vantage_id: str | None = None) -> list[dict[str, Any]]:
        return self.connection.execute(
            "SELECT s.vantage_id, s.url, s.target_id, "
            "COALESCE(s.list_name, t.list_name) AS list_name, s.state, s.method, s.since, "
            "s.last_change, s.last_measured_at, s.last_uid, s.probe_asn, s.probe_cc, s.streak, "
            "t.name AS target_name, t.category_code "
            "FROM target_state s LEFT JOIN targets t ON t.id = s.target_id "
            "WHERE (%(list)s::text IS NULL OR COALESCE(s.list_name, t.list_name) = %(list)s) "
            "AND (%(state)s::text IS NULL OR s.state = %(state)s) "
            "AND (%(category)s::text IS NULL OR t.category_code = %(category)s) "
            "AND (%(vantage)s::text IS NULL OR s.vantage_id = %(vantage)s) "
            "ORDER BY s.vantage_id, s.target_id, s.url",
            {"list": list_name, "state": state, "category": category, "vantage": vantage_id},
        ).fetchall()

    def load_state(self, vantage_id: str, url: str) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self.connection.execute(
            "SELECT * FROM target_state WHERE vantage_id = %s AND url = %s", (vantage_id, url)
        ).fetchone()
        return row

    def save_state(self, state_row: Mapping[str, Any],
                   transition: Mapping[str, Any] | None) -> None:
        with self.database.transaction():
            self._write_state(state_row, transition)

    def _write_state(self, state_row: Mapping[str, Any],
                     transition: Mapping[str, Any] | None) -> None:
        """Inside the caller's transaction."""
        updates = ", ".join(
            f"{column} = EXCLUDED.{column}" for column in STATE_COLUMNS
            if column not in ("vantage_id", "url")
        )
        self.connection.execute(
            f"INSERT INTO target_state ({', '.join(STATE_COLUMNS)}) VALUES "
            f"({', '.join(['%s'] * len(STATE_COLUMNS))}) "
            f"ON CONFLICT (vantage_id, url) DO UPDATE SET {updates}",
            [state_row.get(column) for column in STATE_COLUMNS],
        )
        if transition is not None:
            self.connection.execute(
                f"INSERT INTO state_transitions ({', '.join(TRANSITION_COLUMNS)}) VALUES "
                f"({', '.join(['%s'] * len(TRANSITION_COLUMNS))})",
                [transition.get(column) for column in TRANSITION_COLUMNS],
            )

    def load_transitions(self, *, url: str | None = None, target_id: str | None = None,
                         vantage_id: str | None = None, since: TimeBound | None = None,
                         until: TimeBound | None = None,
                         after_id: int | None = None) -> list[dict[str, Any]]:
        return self.connection.execute(
            "SELECT * FROM state_transitions WHERE "
            "(%(url)s::text IS NULL OR url = %(url)s) "
            "AND (%(target)s::text IS NULL OR target_id = %(target)s) "
            "AND (%(vantage)s::text IS NULL OR vantage_id = %(vantage)s) "
            "AND (%(since)s::text IS NULL OR at >= %(since)s) "
            "AND (%(until)s::text IS NULL OR at < %(until)s) "
            "AND (%(after)s::bigint IS NULL OR id > %(after)s) ORDER BY id",
            {"url": url, "target": target_id, "vantage": vantage_id,
             "since": _time_or_none(since), "until": _time_or_none(until), "after": after_id},
        ).fetchall()

    # ---- spool -----------------------------------------------------------------------------

    def spool_pending(self, limit: int) -> list[dict[str, Any]]:
        return self.connection.execute(
            "SELECT s.uid, m.json FROM spool s JOIN measurements m ON m.uid = s.uid "
            "WHERE s.status = 'pending' ORDER BY s.queued_at, s.uid LIMIT %s",
            (limit,),
        ).fetchall()

    def mark_uploaded(self, uids: Iterable[str]) -> int:
        uid_list = list(uids)
        if not uid_list:
            return 0
        cursor = self.connection.execute("DELETE FROM spool WHERE uid = ANY(%s)", (uid_list,))
        return cursor.rowcount

    def spool_backlog(self) -> int:
        row = self.connection.execute(
            "SELECT COUNT(*) AS n FROM spool WHERE status = 'pending'").fetchone()
        return int(row["n"]) if row else 0

    def park_upload(self, uid: str, reason: str) -> bool:
        cursor = self.connection.execute(
            "UPDATE spool SET status = 'parked', reason = %s, parked_at = %s WHERE uid = %s",
            (reason, store_time(self.clock()), uid),
        )
        return cursor.rowcount == 1

    def spool_parked(self) -> int:
        row = self.connection.execute(
            "SELECT COUNT(*) AS n FROM spool WHERE status = 'parked'").fetchone()
        return int(row["n"]) if row else 0

    def unpark_uploads(self, reason_contains: str, parked_before: str) -> int:
        cursor = self.connection.execute(
            "UPDATE spool SET status = 'pending' WHERE status = 'parked' "
            "AND strpos(reason, %s) > 0 AND parked_at < %s", (reason_contains, parked_before))
        return cursor.rowcount

    def load_parked(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.connection.execute(
            "SELECT uid, queued_at, parked_at, reason FROM spool WHERE status = 'parked' "
            "ORDER BY parked_at DESC, uid LIMIT %s",
            (limit,),
        ).fetchall()

    # ---- upkeep ----------------------------------------------------------------------------

    def prune(self, older_than: TimeBound) -> int:
        # As SQLiteStore: measurements that are evidence of a current state or a transition stay.
        doomed = (
            "SELECT uid FROM measurements WHERE measured_at < %(cutoff)s "
            "AND uid NOT IN (SELECT last_uid FROM target_state WHERE last_uid IS NOT NULL) "
            "AND uid NOT IN (SELECT measurement_uid FROM state_transitions "
            "WHERE measurement_uid IS NOT NULL) "
            # Not yet uploaded: deleting it would lose it for the collector too.
            "AND uid NOT IN (SELECT uid FROM spool WHERE status = 'pending')"
        )
        parameters = {"cutoff": store_time(older_than)}
        with self.database.transaction():
            self.connection.execute(f"DELETE FROM spool WHERE uid IN ({doomed})", parameters)
            deleted = self.connection.execute(
                f"DELETE FROM measurements WHERE uid IN ({doomed})", parameters
            ).rowcount
            self.connection.execute(
                "DELETE FROM runs WHERE finished_at < %(cutoff)s AND id NOT IN "
                "(SELECT DISTINCT run_id FROM measurements WHERE run_id IS NOT NULL)",
                parameters,
            )
        return deleted

    def close(self) -> None:
        self.database.close()
