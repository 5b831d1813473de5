"""One migration ledger for every table: named sets, applied once each, old ledgers adopted."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.store.base import StoreError
from monitor.store.database import Database
from monitor.store.migrations import MigrationSet, postgres_statement

LEDGER_TABLE = "schema_migrations"

_CREATE_LEDGER = f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    migration_set TEXT NOT NULL,
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (migration_set, version)
)"""

# Several collector replicas may start at once on one PostgreSQL database: one migrates, the
# others wait for it and then find nothing left to do.
MIGRATION_LOCK = 7312000

# The two ledgers of the releases before named sets, which are adopted (never written again):
# `schema_version` numbered the store's migrations 1-5, of which 3 made the alert tables;
# `collector_schema_version` numbered the collector's. A version they name that this blockmon
# does not know stays in its set, so the "newer than this blockmon knows" refusal sees it.
_LEGACY_STORE_TABLE = "schema_version"
_LEGACY_COLLECTOR_TABLE = "collector_schema_version"
_LEGACY_STORE_VERSIONS = {3: ("alerts", 1)}


def _legacy_rows(database: Database) -> list[tuple[str, int, str, str]]:
    """(set, version, description, applied_at) of what the old ledgers record."""
    found: list[tuple[str, int, str, str]] = []
    if database.table_exists(_LEGACY_STORE_TABLE):
        for row in database.rows(f"SELECT version, description, applied_at "
                                 f"FROM {_LEGACY_STORE_TABLE} ORDER BY version"):
            name, version = _LEGACY_STORE_VERSIONS.get(int(row["version"]),
                                                       ("store", int(row["version"])))
            found.append((name, version, str(row["description"]), str(row["applied_at"])))
    if database.table_exists(_LEGACY_COLLECTOR_TABLE):
        for row in database.rows(f"SELECT version, applied_at FROM {_LEGACY_COLLECTOR_TABLE} "
                                 "ORDER BY version"):
            found.append(("collector", int(row["version"]), "adopted from collector_schema_version",
                          str(row["applied_at"])))
    return found


def applied_versions(database: Database) -> dict[str, set[int]]:
    """The versions applied to the database, by set; an old database not yet opened by this
    blockmon answers from its old ledgers, as they will be adopted."""
    applied: dict[str, set[int]] = {}
    if database.table_exists(LEDGER_TABLE):
        pairs = [(row["migration_set"], int(row["version"])) for row in
                 database.rows(f"SELECT migration_set, version FROM {LEDGER_TABLE}")]
    else:
        pairs = [(name, version) for name, version, _, _ in _legacy_rows(database)]
    for name, version in pairs:
        applied.setdefault(name, set()).add(version)
    return applied


def _adopt_or_refuse(database: Database) -> None:
    """Creates the ledger; a database of an older release gets its old ledgers' rows in it."""
    if database.table_exists(LEDGER_TABLE):
        return
    if not database.table_exists(_LEGACY_STORE_TABLE) and database.table_exists("measurements"):
        raise StoreError(f"{database.description}: has a measurements table but no migration "
                         f"ledger ({LEDGER_TABLE}); it was not made by blockmon, refusing to "
                         "change it")
    legacy = _legacy_rows(database)
    database.execute(_CREATE_LEDGER)
    for row in legacy:
        database.execute(f"INSERT INTO {LEDGER_TABLE} (migration_set, version, description, "
                         "applied_at) VALUES (?, ?, ?, ?)", row)


def migrate(database: Database, migration_sets: Sequence[MigrationSet], *,
            now: str) -> list[tuple[str, int]]:
    """Applies the migrations of `migration_sets` the ledger lacks, in the order given; returns
    the (set, version) pairs it applied (none on a second start, adopted ones not counted).

    One transaction, under the migration lock: the ledger is adopted, checked and brought up to
    date together, or the database is left as it was. Sets not named are left alone (a probe
    opening a collector's database does not touch the collector's tables).
    """
    ran: list[tuple[str, int]] = []
    with database.transaction(lock=MIGRATION_LOCK):
        _adopt_or_refuse(database)
        applied = applied_versions(database)
        for migration_set in migration_sets:
            newest = max(applied.get(migration_set.name, ()), default=0)
            if newest > migration_set.latest:
                raise StoreError(
                    f"{database.description}: {migration_set.name} schema version {newest} is "
                    f"newer than this blockmon knows ({migration_set.latest}); upgrade blockmon")
        for migration_set in migration_sets:
            done = applied.get(migration_set.name, set())
            for migration in migration_set.migrations:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    database.execute(statement if database.dialect == "sqlite"
                                     else postgres_statement(statement))
                database.execute(
                    f"INSERT INTO {LEDGER_TABLE} (migration_set, version, description, "
                    "applied_at) VALUES (?, ?, ?, ?)",
                    (migration_set.name, migration.version, migration.description, now))
                ran.append((migration_set.name, migration.version))
    return ran


def schema_version(database: Database, migration_set: str = "store") -> int:
    """The highest version of one set applied (0 for an empty database)."""
    return max(applied_versions(database).get(migration_set, ()), default=0)


def pending(database: Database, migration_sets: Sequence[MigrationSet]) -> list[str]:
    """The migrations of `migration_sets` the database lacks, as "set version" (read only)."""
    applied = applied_versions(database)
    return [f"{migrations.name} {migration.version}" for migrations in migration_sets
            for migration in migrations.migrations
            if migration.version not in applied.get(migrations.name, set())]
