"""Storage of measurements and states: open_store() picks SQLite or PostgreSQL by URL."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from monitor.store import ledger
from monitor.store.base import Store, StoreError, redact_database_url
from monitor.store.database import damaged_database_message, is_damaged_database
from monitor.store.migrations import DEFAULT_MIGRATION_SETS, MigrationSet
from monitor.store.rows import measurement_row, store_time
from monitor.store.sqlite import SQLiteStore

__all__ = ["MigrationSet", "Store", "StoreError", "damaged_database_message",
           "is_damaged_database", "measurement_row", "open_store", "sqlite_path", "store_time"]


def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL or of a bare path; None for other URLs."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///"))
    if "://" not in database_url:
        return Path(database_url)
    return None


def open_store(database_url: str, *, spool: bool = False, migrate: bool = True,
               migration_sets: Sequence[MigrationSet] = DEFAULT_MIGRATION_SETS,
               read_only: bool = False) -> Store:
    """Opens (and by default migrates) the store at `database_url`.

    sqlite:///PATH or a bare PATH -> SQLite (the directory is created); postgresql://... ->
    monitor.store.postgres.PostgresStore. `spool` keeps each new measurement's uid in the spool
    for upload to a collector (set when [collector] url is). `migration_sets` are the tables the
    database holds: the store's own unless the opener names more (monitor.schema.PROBE_DATABASE,
    monitor.collector.schema.COLLECTOR_DATABASE).

    `read_only` (SQLite): an existing file the user cannot write, opened without writing;
    nothing is migrated, and a file whose migrations are not all applied is refused by name.
    """
    path = sqlite_path(database_url)
    store: Store
    if path is not None and read_only:
        return _open_sqlite_read_only(path, migration_sets)
    if path is not None:
        store = SQLiteStore(path, spool=spool, migration_sets=migration_sets)
    elif database_url.startswith(("postgresql://", "postgres://")):
        try:
            # Imported by name: psycopg is optional (pip install 'blockmon[postgres]').
            module = importlib.import_module("monitor.store.postgres")
        except ModuleNotFoundError as error:
            if error.name not in ("psycopg", "monitor.store.postgres"):
                raise
            raise StoreError(f"database {redact_database_url(database_url)!r}: PostgreSQL "
                             "support is not installed "
                             "(pip install 'blockmon[postgres]')") from None
        store = module.PostgresStore(database_url, spool=spool, migration_sets=migration_sets)
    else:
        raise StoreError(f"database {redact_database_url(database_url)!r}: use sqlite:///PATH "
                         "or postgresql://...")
    if migrate:
        store.migrate()
    return store


def _open_sqlite_read_only(path: Path, migration_sets: Sequence[MigrationSet]) -> Store:
    """The SQLite store at `path` for reading only, if its ledger is current."""
    store = SQLiteStore(path, migration_sets=migration_sets, read_only=True)
    try:
        missing = ledger.pending(store.database, migration_sets)
    except sqlite3.DatabaseError as error:
        store.close()
        raise StoreError(f"{path}: cannot read it as a blockmon database ({error})") from None
    if missing:
        store.close()
        raise StoreError(f"{path}: read-only for this user and its migrations are not current "
                         f"({', '.join(missing)} not applied); run `blockmon run --once` once "
                         "as a user who can write it")
    return store
