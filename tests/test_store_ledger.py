"""The one migration ledger: named sets, and databases of the release before it adopted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alerts.schema import ALERT_TABLES
from monitor.collector.registry import Registry
from monitor.collector.schema import COLLECTOR_DATABASE, COLLECTOR_MIGRATIONS
from monitor.schema import PROBE_DATABASE
from monitor.store import StoreError, open_store
from monitor.store.database import Database, DatabaseUrl, connect, psycopg_sql
from monitor.store.ledger import applied_versions, migrate
from monitor.store.migrations import MIGRATIONS, postgres_statement

# What the releases before named sets ran: store versions 1-5 (3 the alert tables) recorded in
# schema_version, the collector's tables recorded in collector_schema_version.
_OLD_STORE_STEPS = {migration.version: migration.statements for migration in MIGRATIONS}
_OLD_STORE_STEPS[3] = ALERT_TABLES
_OLD_LEDGER = ("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
               "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
_OLD_COLLECTOR_LEDGER = ("CREATE TABLE collector_schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
# Store migrations added since the named sets (9: runs.reason): applied on adoption.
_NEWER_STORE = {migration.version for migration in MIGRATIONS if migration.version > 5}
_ALL = {("store", 1), ("store", 2), ("alerts", 1), ("store", 4), ("store", 5), ("collector", 1)}


def _old_database(database: Database, store_versions: int, *, collector: bool) -> None:
    """A database as the previous release left it at `store_versions`, with one row each."""
    def run(statement: str, *, store_table: bool = True) -> None:
        postgres = database.dialect == "postgres" and store_table
        database.execute(postgres_statement(statement) if postgres else statement)

    run(_OLD_LEDGER)
    for version in range(1, store_versions + 1):
        for statement in _OLD_STORE_STEPS[version]:
            run(statement)
        database.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                         (version, f"old {version}", "2026-01-01T00:00:00Z"))
    database.execute("INSERT INTO measurements (uid, url, vantage_id, measured_at, json) "
                     "VALUES ('old-uid', 'https://a.example/', 'kz-1', '2026-01-01T00:00:00Z', "
                     "'{\"annotations\": {\"list\": \"kz\"}}')")
    if collector:
        database.execute(_OLD_COLLECTOR_LEDGER)
        # The previous release ran the collector's DDL as written (its keys enforced).
        for statement in COLLECTOR_MIGRATIONS.migrations[0].statements:
            database.execute(statement)
        database.execute("INSERT INTO collector_schema_version VALUES (1, '2026-01-01T00:00:00Z')")
        database.execute("INSERT INTO probes (probe_id, probe_cc, probe_asn, registered_at) "
                         "VALUES ('kz-1', 'KZ', 'AS9198', '2026-01-01T00:00:00Z')")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def _build(url: str, store_versions: int, *, collector: bool) -> None:
    database = connect(DatabaseUrl.parse(url))
    try:
        _old_database(database, store_versions, collector=collector)
    finally:
        database.close()


def _ledger_rows(url: str) -> list[dict[str, object]]:
    database = connect(DatabaseUrl.parse(url))
    try:
        return database.rows("SELECT migration_set, version, description, applied_at "
                             "FROM schema_migrations ORDER BY migration_set, version")
    finally:
        database.close()


def test_an_old_collector_database_is_adopted_without_running_ddl(database_url: str) -> None:
    _build(database_url, 5, collector=True)
    # The old DDL has no IF NOT EXISTS: running any of it again would fail.
    store = open_store(database_url, migration_sets=COLLECTOR_DATABASE)
    try:
        assert applied_versions(store.database) == {
            "store": {1, 2, 4, 5} | _NEWER_STORE, "alerts": {1}, "collector": {1}}
        assert store.schema_version() == max({5} | _NEWER_STORE)
        assert store.load_measurement("old-uid") == {"annotations": {"list": "kz"}}
        assert [probe.probe_id for probe in Registry(store.database).list_probes()] == ["kz-1"]
    finally:
        store.close()
    adopted = _ledger_rows(database_url)
    old = [row for row in adopted if (row["migration_set"], row["version"]) in _ALL]
    assert {(row["migration_set"], row["version"]) for row in adopted} == _ALL | {
        ("store", version) for version in _NEWER_STORE}
    assert {row["applied_at"] for row in old} == {"2026-01-01T00:00:00Z"}
    # A second start migrates nothing.
    store = open_store(database_url, migration_sets=COLLECTOR_DATABASE)
    try:
        assert migrate(store.database, COLLECTOR_DATABASE, now="2027-01-01T00:00:00Z") == []
    finally:
        store.close()
    assert _ledger_rows(database_url) == adopted


@pytest.mark.parametrize("store_versions", [2, 3, 4])
def test_a_partly_migrated_old_database_gets_what_it_lacks(database_url: str,
                                                           store_versions: int) -> None:
    _build(database_url, store_versions, collector=False)
    store = open_store(database_url, spool=True, migrate=False)
    try:
        assert store.schema_version() == (2 if store_versions == 3 else store_versions)
        ran = migrate(store.database, PROBE_DATABASE, now="2027-01-01T00:00:00Z")
        assert ran == [("store", version) for version in (4, 5, *sorted(_NEWER_STORE))
                       if version > store_versions] + (
            [("alerts", 1)] if store_versions < 3 else [])
        assert applied_versions(store.database) == {"store": {1, 2, 4, 5} | _NEWER_STORE,
                                                    "alerts": {1}}
        assert store.spool_backlog() == 0  # spool.status, from store version 4
        assert store.database.scalar("SELECT COUNT(*) FROM incidents") == 0
        [row] = store.iter_measurements()
        assert row["uid"] == "old-uid"
    finally:
        store.close()
    applied_at = {(row["migration_set"], row["version"]): row["applied_at"]
                  for row in _ledger_rows(database_url)}
    assert all(applied_at[("store", version)] == "2026-01-01T00:00:00Z"
               for version in (1, 2) if version <= store_versions)


def test_a_collector_database_without_its_old_ledger_gets_the_collector_set(
        database_url: str) -> None:
    _build(database_url, 5, collector=False)
    store = open_store(database_url, migration_sets=COLLECTOR_DATABASE)
    try:
        assert applied_versions(store.database)["collector"] == {1}
        assert Registry(store.database).list_probes() == []
    finally:
        store.close()


def test_an_old_ledger_newer_than_this_blockmon_is_refused(database_url: str) -> None:
    _build(database_url, 5, collector=False)
    database = connect(DatabaseUrl.parse(database_url))
    future = max(migration.version for migration in MIGRATIONS) + 1
    database.execute(f"INSERT INTO schema_version VALUES ({future}, 'future', 'x')")
    database.close()
    with pytest.raises(StoreError,
                       match=rf"store schema version {future} is newer than this blockmon"):
        open_store(database_url, migration_sets=PROBE_DATABASE)
    database = connect(DatabaseUrl.parse(database_url))
    try:
        assert not database.table_exists("schema_migrations")  # refused, nothing changed
    finally:
        database.close()


def test_sets_not_named_are_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    open_store(url).close()
    store = open_store(url, migration_sets=PROBE_DATABASE)
    try:
        assert applied_versions(store.database) == {"store": {1, 2, 4, 5} | _NEWER_STORE,
                                                    "alerts": {1}}
        assert not store.database.table_exists("probes")
    finally:
        store.close()


def test_placeholders_reach_psycopg_in_its_style() -> None:
    assert psycopg_sql("SELECT ? WHERE a LIKE '5%'", (1,)) == "SELECT %s WHERE a LIKE '5%%'"
    assert psycopg_sql("SELECT :since::text, '18:01:02'", {"since": 1}) == (
        "SELECT %(since)s::text, '18:01:02'")


def test_two_processes_starting_at_once_migrate_once(database_url: str) -> None:
    _build(database_url, 2, collector=True)
    barrier = threading.Barrier(2)
    outcomes: list[list[tuple[str, int]]] = []

    def start() -> None:
        store = open_store(database_url, migrate=False)
        try:
            barrier.wait()
            outcomes.append(migrate(store.database, COLLECTOR_DATABASE, now="2027-01-01T00:00:00Z"))
        finally:
            store.close()

    starters = [threading.Thread(target=start) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    # The one that waited for the migration lock found nothing left to do.
    newer = [("store", version) for version in sorted(_NEWER_STORE)]
    assert sorted(outcomes, key=len) == [[], [("store", 4), ("store", 5), *newer, ("alerts", 1)]]
    assert {(row["migration_set"], row["version"]) for row in _ledger_rows(database_url)} == (
        _ALL | set(newer))
