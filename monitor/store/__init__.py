"""Storage of measurements and states: open_store() picks SQLite or PostgreSQL by URL."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from monitor.store.base import Store, StoreError, redact_database_url
from monitor.store.migrations import DEFAULT_MIGRATION_SETS, MigrationSet
from monitor.store.rows import measurement_row, store_time
from monitor.store.sqlite import SQLiteStore

__all__ = ["MigrationSet", "Store", "StoreError", "measurement_row", "open_store", "sqlite_path",
           "store_time"]


def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL or of a bare path; None for other URLs."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///"))
    if "://" not in database_url:
        return Path(database_url)
    return None


def open_store(database_url: str, *, spool: bool = False, migrate: bool = True,
               migration_sets: Sequence[MigrationSet] = DEFAULT_MIGRATION_SETS) -> Store:
    """Opens (and by default migrates) the store at `database_url`.

    sqlite:///PATH or a bare PATH -> SQLite (the directory is created); postgresql://... ->
    monitor.store.postgres.PostgresStore. `spool` keeps each new measurement's uid in the spool
    for upload to a collector (set when [collector] url is). `migration_sets` are the tables the
    database holds: the store's own unless the opener names more (monitor.schema.PROBE_DATABASE,
    monitor.collector.schema.COLLECTOR_DATABASE).
    """
    path = sqlite_path(database_url)
    store: Store
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
