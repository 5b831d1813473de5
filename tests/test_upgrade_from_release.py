"""Databases of the release before issue 10 (commit 8432c49) open with today's code: no row is
lost, every command works on them, and a second start migrates nothing.

tests/fixtures/release_0_1/ holds a probe's and a collector's database as that release's own
code wrote them (its regenerate.py says how); nothing here needs the old code or git history.
The checks are on behaviour only (rows, schema objects, command output), never on how the
migration ledger is kept, so any ledger that adopts the old ones passes.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.state import Observation, decide_next_state
from monitor.store import open_store
from probes.ooni.export import repair_measurement
from tests.fixtures.collector import CollectorProcess, http_json, sample_measurement

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"
RELEASE: dict[str, Any] = json.loads((FIXTURES / "release.json").read_text(encoding="utf-8"))
VANTAGE = RELEASE["vantage_id"]
# What the demo of that release ends with: one confirmed block per method, by target.
DEMO_BLOCKS = {"azattyq": "tls.timeout", "fergana": "dns.nxdomain",
               "eurasianet": "http.blockpage", "facebook": "tls.mitm", "vk": "tcp.reset"}
# The release's two ledgers: a new ledger may adopt them and drop them, but not change them.
OLD_LEDGERS = frozenset({"schema_version", "collector_schema_version"})
# Every collector start re-arms the standing [collector] enrolment_secret (uses_left and
# expires_at from now): data refreshed by design, not a migration.
STANDING_SECRET_NOTE = "[collector] enrolment_secret"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")

DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Snapshot:
    """Everything in one database: each table's rows and its schema objects."""

    rows: Rows
    columns: frozenset[tuple[str, str]]
    indexes: frozenset[str]
    schema: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class ReleaseDatabase:
    dialect: str
    url: str  # as blockmon is given it
    connect: Callable[[], Any]

    def snapshot(self) -> Snapshot:
        connection = self.connect()
        try:
            return read_snapshot(connection, self.dialect)
        finally:
            connection.close()

    def execute(self, statement: str) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            return list(connection.execute(statement).fetchall())
        finally:
            connection.close()


def restore(name: str, dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> ReleaseDatabase:
    """The fixture's `<dialect>_<name>.sql` loaded into a new SQLite file or PostgreSQL schema."""
    script = (FIXTURES / f"{dialect}_{name}.sql").read_text(encoding="utf-8")
    if dialect == "sqlite":
        path = tmp_path / f"{name}.db"
        connection = sqlite3.connect(path)
        connection.executescript(script)
        connection.close()
        return ReleaseDatabase(dialect, f"sqlite:///{path}", lambda: sqlite3.connect(path))
    url = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(script)
    return ReleaseDatabase(dialect, url, lambda: psycopg.connect(url, autocommit=True))


def _query(connection: Any, statement: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(statement).fetchall()]


def read_snapshot(connection: Any, dialect: str) -> Snapshot:
    if dialect == "sqlite":
        tables = [name for (name,) in _query(
            connection, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {(table, column) for table in tables for (_, column, *_rest) in _query(
            connection, f'PRAGMA table_info("{table}")')}
        indexes = {name for (name,) in _query(
            connection, "SELECT name FROM sqlite_master WHERE type = 'index'")}
        schema = _query(connection, "SELECT type, name, tbl_name, sql FROM sqlite_master "
                                    "ORDER BY type, name")
    else:
        tables = [name for (name,) in _query(
            connection, "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()")]
        described = _query(
            connection, "SELECT table_name, column_name, data_type, column_default, is_nullable "
                        "FROM information_schema.columns WHERE table_schema = current_schema() "
                        "ORDER BY table_name, column_name")
        columns = {(table, column) for (table, column, *_rest) in described}
        index_rows = _query(connection, "SELECT tablename, indexname, indexdef FROM pg_indexes "
                                        "WHERE schemaname = current_schema() ORDER BY indexname")
        indexes = {name for (_, name, _) in index_rows}
        schema = (
            described + index_rows
            + _query(connection, "SELECT table_name, constraint_name, constraint_type "
                                 "FROM information_schema.table_constraints "
                                 "WHERE table_schema = current_schema() ORDER BY constraint_name")
            + _query(connection, "SELECT sequencename, last_value FROM pg_sequences "
                                 "WHERE schemaname = current_schema() ORDER BY sequencename"))
    rows: Rows = {}
    for table in tables:
        cursor = connection.execute(f'SELECT * FROM "{table}"')
        names = [column[0] for column in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        rows[table] = sorted((_without_refreshed_values(table, row) for row in found), key=repr)
    return Snapshot(rows, frozenset(columns), frozenset(indexes), tuple(sorted(schema, key=repr)))


def _without_refreshed_values(table: str, row: dict[str, Any]) -> dict[str, Any]:
    if table == "enrolment_secrets" and row.get("note") == STANDING_SECRET_NOTE:
        return {**row, "uses_left": "(re-armed at start)", "expires_at": "(re-armed at start)"}
    return row


def assert_nothing_lost(old: Snapshot, new: Snapshot) -> None:
    """Every old table, column and index is there; every old table holds exactly its old rows
    (values compared on the old columns; new columns and tables are allowed)."""
    assert old.columns <= new.columns, f"columns lost: {sorted(old.columns - new.columns)}"
    assert old.indexes <= new.indexes, f"indexes lost: {sorted(old.indexes - new.indexes)}"
    for table, old_rows in old.rows.items():
        if table in OLD_LEDGERS and table not in new.rows:
            continue
        assert table in new.rows, f"table {table} lost"
        old_columns = sorted({column for column in old_rows[0]}) if old_rows else []
        kept = Counter(repr([row[column] for column in old_columns]) for row in new.rows[table])
        wanted = Counter(repr([row[column] for column in old_columns]) for row in old_rows)
        if table in OLD_LEDGERS:
            # Still there: its rows stay (a later migration may add its own).
            assert not wanted - kept, f"{table}: rows lost or changed: {wanted - kept}"
            continue
        assert kept == wanted, (f"{table}: lost or changed {wanted - kept}, "
                                f"added {kept - wanted}")


def assert_no_migration_recorded_twice(snapshot: Snapshot) -> None:
    """In every ledger-like table, old or new, no migration appears twice (times aside)."""
    for table, rows in snapshot.rows.items():
        if not re.search(r"schema|migration", table):
            continue
        entries = [repr(sorted((key, value) for key, value in row.items()
                               if not (isinstance(value, str) and TIMESTAMP.match(value))))
                   for row in rows]
        repeated = [entry for entry, count in Counter(entries).items() if count > 1]
        assert not repeated, f"{table}: recorded twice: {repeated}"


def invoke(config: Path, *arguments: str) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *arguments])
    assert result.exit_code == 0, result.output
    return result


def write_config(tmp_path: Path, database_url: str) -> Path:
    config = tmp_path / "blockmon.toml"
    config.write_text(
        f'[probe]\nvantage_id = "{VANTAGE}"\ncc = "KZ"\nasn = "AS9198"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase = "{database_url}"\n'
        # A collector URL, so `status` shows the spool; nothing is sent to it.
        '[collector]\nurl = "http://127.0.0.1:9/"\n'
        f'[reports]\nout_dir = "{tmp_path / "reports"}"\nweekly = false\nmonthly = false\n',
        encoding="utf-8")
    return config


def decide(current: dict[str, Any] | None, row: dict[str, Any]) -> Any:
    return decide_next_state(current, Observation.from_row(row), confirmations_needed=3)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_probe_database_of_the_release_keeps_every_row_and_every_command_works(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = restore("probe", dialect, tmp_path, request)
    old = database.snapshot()
    assert {"measurements", "target_state", "state_transitions", "runs", "targets", "spool",
            "incidents", "alerts", "alert_deliveries"} <= {t for t, r in old.rows.items() if r}

    # As `blockmon run` opens it (with a collector configured, so with the spool).
    open_store(database.url, spool=True).close()
    first = database.snapshot()
    assert_nothing_lost(old, first)
    assert_no_migration_recorded_twice(first)
    open_store(database.url, spool=True).close()
    assert database.snapshot() == first, "the second start changed the database"

    config = write_config(tmp_path, database.url)
    status = json.loads(invoke(config, "status", "--format", "json").output)
    blocked = {row["target_id"]: row["method"] for row in status["states"]
               if row["state"] == "blocked"}
    assert blocked == DEMO_BLOCKS
    assert {row["url"] for row in status["states"]} == {
        row["url"] for row in old.rows["target_state"]}
    assert (status["spool_backlog"], status["spool_parked"]) == (2, 1)
    table = invoke(config, "status").output
    assert "2 measurements waiting for upload" in table and "1 parked" in table
    assert "https://vk.com/" in table and "tcp.reset" in table

    history = invoke(config, "history", "vk", "--format", "json").output
    vk_transitions = [row for row in old.rows["state_transitions"] if row["url"] == "https://vk.com/"]
    assert vk_transitions and all(row["at"] in history for row in vk_transitions)
    assert "tcp.reset" in invoke(config, "history", "vk").output

    month = RELEASE[dialect]["month"]
    out = tmp_path / "export.jsonl"
    assert "exported" in invoke(config, "export", "--since", f"{month}-01", "-o", str(out)).output
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(m["measurement_uid"] for m in exported) == sorted(
        row["uid"] for row in old.rows["measurements"])
    # Exported as stored, except the release's textual rcodes, written as OONI's integer.
    stored = {row["uid"]: repair_measurement(json.loads(row["json"]))
              for row in old.rows["measurements"]}
    assert all(stored[m["measurement_uid"]] == m for m in exported)
    assert all(isinstance(q["rcode"], int | None) for m in exported
               for q in m["test_keys"]["queries"])

    report = invoke(config, "report", "--period", month, "--format", "json",
                    "--out", str(tmp_path / "reports"))
    assert report.output
    written = "".join(path.read_text(encoding="utf-8")
                      for path in (tmp_path / "reports").rglob("*.json"))
    for target, method in DEMO_BLOCKS.items():
        assert target in written and method in written

    alerts = [json.loads(line) for line in
              invoke(config, "alerts", "list", "--state", "all", "--json").output.splitlines()]
    assert sorted((a["id"], a["summary"]) for a in alerts) == sorted(
        (a["id"], a["summary"]) for a in old.rows["alerts"])
    sent = sum(1 for row in old.rows["alert_deliveries"] if row["status"] == "sent")
    assert sum(a["delivered"] for a in alerts) == sent

    # The next measurement of a blocked URL is saved and moves its state, as the runner does.
    last = max((row for row in old.rows["measurements"] if row["url"] == "https://www.facebook.com/"),
               key=lambda row: row["measured_at"])
    measurement = json.loads(last["json"])
    moment = datetime.now(UTC)
    measurement["measurement_uid"] = moment.strftime("%Y%m%dT%H%M%S.%fZ") + "_KZ_webconnectivity_" + "0" * 16
    measurement["measurement_start_time"] = moment.strftime("%Y-%m-%d %H:%M:%S")
    store = open_store(database.url, spool=True)
    try:
        outcome = store.save_measurement_with_state(
            measurement, target_id="facebook", run_id=None, confirmation=0, decide=decide)
        assert outcome.saved and outcome.state_row is not None
        state = store.load_state(VANTAGE, "https://www.facebook.com/")
        assert state is not None
        assert (state["state"], state["method"], state["last_uid"]) == (
            "blocked", "tls.mitm", measurement["measurement_uid"])
        assert store.spool_backlog() == 3
    finally:
        store.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_collector_database_of_the_release_keeps_its_probes_and_their_tokens(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = restore("collector", dialect, tmp_path, request)
    facts = RELEASE[dialect]
    old = database.snapshot()
    assert {"probes", "probe_tokens", "enrolment_secrets", "target_list_versions",
            "measurements", "target_state"} <= {t for t, r in old.rows.items() if r}

    collector = CollectorProcess(
        database=database.url, workdir=tmp_path,
        environment={"BLOCKMON_COLLECTOR_ENROLMENT_SECRET": RELEASE["standing_secret"]})
    collector.start()
    collector.stop()
    first = database.snapshot()
    assert_nothing_lost(old, first)
    assert_no_migration_recorded_twice(first)
    collector.start()
    try:
        assert database.snapshot() == first, "the second start changed the database"

        status, answer = http_json("POST", f"{collector.url}/api/v1/check-in", {},
                                   token=facts["token"])
        assert status == 200, answer
        assert (answer["probe_id"], answer["targets_version"]) == (
            VANTAGE, facts["target_list_version"])
        assert answer["targets"]["schedule"] == {"interval_minutes": 60, "lists": ["briefing"]}
        status, answer = http_json("POST", f"{collector.url}/api/v1/check-in", {},
                                   token=facts["revoked_token"])
        assert (status, "revoked" in answer["error"]) == (403, True), answer

        measurement = sample_measurement(
            1, vantage_id=VANTAGE, url="https://vk.com/",
            started=datetime.now(UTC) - timedelta(minutes=1))
        measurement["probe_network_name"] = "JSC Kazakhtelecom (lab)"
        status, answer = http_json("POST", f"{collector.url}/api/v1/measurements",
                                   {"measurements": [measurement]}, token=facts["token"])
        assert (status, answer["stored"]) == (200, 1), answer
    finally:
        collector.stop()
    uid = measurement["measurement_uid"]
    assert database.execute(
        f"SELECT last_uid FROM target_state WHERE url = 'https://vk.com/' "
        f"AND vantage_id = '{VANTAGE}'") == [(uid,)]

    listed = CliRunner().invoke(cli, ["collector", "probes", "--database", database.url, "--json"])
    assert listed.exit_code == 0, listed.output
    probes = {probe["probe_id"]: probe for probe in map(json.loads, listed.output.splitlines())}
    assert set(probes) == {VANTAGE, RELEASE["revoked_probe"]}
    assert probes[VANTAGE]["revoked_at"] is None and probes[VANTAGE]["last_seen_at"]
    assert probes[RELEASE["revoked_probe"]]["revoked_at"]
