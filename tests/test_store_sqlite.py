"""SQLite specifics: migrations from older schemas, pragmas, open_store URLs, the writer thread."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monitor.schema import PROBE_DATABASE
from monitor.store import StoreError, open_store, sqlite_path
from monitor.store.migrations import LATEST_VERSION, MIGRATIONS
from monitor.store.sqlite import SQLiteStore
from monitor.store.writer import StoreWriter
from tests.conftest import PROJECT_ROOT
from tests.fixtures.store import synthetic_measurement

# The ledger of the releases before named migration sets (monitor/store/ledger.py adopts it).
_OLD_VERSION_TABLE = """CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"""


def _make_v1_database(path: Path) -> None:
    """A database as blockmon's schema version 1 left it, with a measurement and a state."""
    connection = sqlite3.connect(path)
    connection.execute(_OLD_VERSION_TABLE)
    for statement in MIGRATIONS[0].statements:
        connection.execute(statement)
    connection.execute("INSERT INTO schema_version VALUES (1, 'v1', '2026-01-01T00:00:00Z')")
    measurement = synthetic_measurement(list_name="kz", blocking="dns", accessible=False)
    connection.execute(
        "INSERT INTO measurements (uid, url, vantage_id, measured_at, json) VALUES (?, ?, ?, ?, ?)",
        (measurement["measurement_uid"], measurement["input"], "kz-almaty-1",
         "2026-11-25T18:01:02Z", json.dumps(measurement)))
    connection.execute(
        "INSERT INTO target_state (vantage_id, url, state, since, last_change, "
        "last_measured_at, last_uid) VALUES ('kz-almaty-1', ?, 'anomaly', 'x', 'x', 'x', ?)",
        (measurement["input"], measurement["measurement_uid"]))
    connection.commit()
    connection.close()


def test_a_v1_database_is_upgraded_and_its_rows_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_v1_database(path)
    store = SQLiteStore(path, migration_sets=PROBE_DATABASE)
    assert store.schema_version() == 1
    assert store.migrate() == LATEST_VERSION
    [row] = store.iter_measurements()
    assert row["list_name"] == "kz"  # filled from the stored JSON by migration 2
    assert [state["list_name"] for state in store.load_states(list_name="kz")] == ["kz"]
    versions = [(r["migration_set"], r["version"]) for r in store.db.query(
        "SELECT migration_set, version FROM schema_migrations ORDER BY applied_at, rowid")]
    # The old ledger's 1 adopted, then what it lacked; the old 3 is the alerts set's 1.
    # Migrations added since (9: runs.reason) follow 5 in the store set.
    newer = [("store", m.version) for m in MIGRATIONS if m.version > 5]
    assert versions == [("store", 1), ("store", 2), ("store", 4), ("store", 5), *newer,
                        ("alerts", 1)]
    store.close()


def test_an_empty_file_gets_every_migration_in_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    assert store.schema_version() == 0
    assert store.migrate() == LATEST_VERSION
    tables = set(store.db.table_names())
    assert {"schema_migrations", "runs", "targets", "measurements", "target_state",
            "state_transitions", "spool"} <= tables
    indexes = {index.name for index in store.db["measurements"].indexes}
    assert {"measurements_measured_at", "measurements_vantage_url_time",
            "measurements_blocking", "measurements_blocking_method",
            "measurements_target_time"} <= indexes
    # Datasette links these
    assert {fk.other_table for fk in store.db["state_transitions"].foreign_keys} >= {
        "measurements", "targets"}
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = open_store(str(path))
    store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES ('store', 99, 'future', 'x')")
    connection.close()
    with pytest.raises(StoreError, match=r"schema version 99 is newer than this blockmon"):
        open_store(f"sqlite:///{path}")


def test_a_foreign_measurements_table_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE measurements (id INTEGER)")
    connection.close()
    with pytest.raises(StoreError, match=r"foreign.db: has a measurements table but no "):
        open_store(str(path))


def test_other_tables_in_the_file_do_not_matter(tmp_path: Path) -> None:
    # The collector keeps its own tables (probes, tokens) next to the store's.
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE probes (probe_id TEXT PRIMARY KEY)")
    connection.close()
    store = open_store(str(path))
    assert store.schema_version() == LATEST_VERSION
    store.close()


def test_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for" * 100)
    with pytest.raises(StoreError, match=r"notes.db: "):
        open_store(str(path))


def test_wal_and_synchronous_normal(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert sqlite_store.integrity_check() == "ok"


def test_open_store_urls(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:////var/x.db") == Path("/var/x.db")
    assert sqlite_path("sqlite:///rel/x.db") == Path("rel/x.db")
    assert sqlite_path("x.db") == Path("x.db")
    assert sqlite_path("postgresql://h/db") is None
    with pytest.raises(StoreError, match=r"'mysql://h/db': use sqlite:///PATH"):
        open_store("mysql://h/db")
    nested = tmp_path / "a" / "b" / "blockmon.db"
    store = open_store(f"sqlite:///{nested}")
    assert nested.exists()
    store.close()


def test_without_spool_nothing_is_queued(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "x.db"))
    store.save_measurement(synthetic_measurement(), target_id="azattyq")
    assert store.spool_backlog() == 0
    store.close()


def test_a_second_process_reads_while_the_first_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writer = open_store(str(path))
    reader = open_store(str(path))
    writer.save_measurement(synthetic_measurement(), target_id="azattyq")
    assert reader.count_measurements() == 1
    writer.close()
    reader.close()


async def test_writer_runs_calls_on_one_thread_off_the_loop(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "w.db"))
    writer = StoreWriter(store)
    seen_threads = set()

    def save(index: int) -> bool:
        seen_threads.add(threading.get_ident())
        return store.save_measurement(
            synthetic_measurement(measured_at=f"2026-11-25 18:00:{index:02d}"),
            target_id="azattyq")

    results = await asyncio.gather(*(writer.call(save, index) for index in range(20)))
    assert results == [True] * 20
    assert len(seen_threads) == 1 and threading.get_ident() not in seen_threads
    assert await writer.call(store.count_measurements) == 20
    await writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await writer.call(store.count_measurements)
    with pytest.raises(sqlite3.ProgrammingError):
        store.count_measurements()  # closed by the writer


_WRITER_SCRIPT = """
import sys
from monitor.state import Observation, decide_next_state
from monitor.store import open_store
from monitor.store.rows import measurement_row
from tests.fixtures.store import synthetic_measurement

store = open_store(sys.argv[1], spool=True)
number = 0
while True:
    number += 1
    measurement = synthetic_measurement(
        url=f"https://site{number % 7}.example/", blocking="dns" if number % 3 else False,
        blocking_method="dns.nxdomain" if number % 3 else None,
        measured_at=f"2026-11-25 {number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}")
    store.save_measurement(measurement, target_id="site")
    row = measurement_row(measurement, target_id="site", run_id=None, confirmation=0)
    decision = decide_next_state(store.load_state(row["vantage_id"], row["url"]),
                                 Observation.from_row(row), confirmations_needed=2)
    store.save_state(decision.new_state_row, decision.transition)
    print(number, flush=True)
"""


def test_kill_9_while_writing_leaves_a_sound_database(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    child = subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(path)],
                             cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for line in child.stdout:  # kill it mid-stream, once it has written a while
            if int(line) >= 200:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    store = open_store(str(path))
    assert store.integrity_check() == "ok"
    saved = store.count_measurements()
    assert saved >= 200
    assert store.spool_backlog() == saved  # measurement and spool entry commit together
    for state in store.load_states():
        assert store.load_measurement(state["last_uid"]) is not None
    store.close()
