"""Storage of measurements and states: open_store() picks SQLite or PostgreSQL by URL."""

from __future__ import annotations

import importlib
from pathlib import Path

from monitor.store.base import Store, StoreError, redact_database_url
from monitor.store.rows import measurement_row, store_time

__all__ = ["Store", "StoreError", "measurement_row", "open_store", "sqlite_path", "store_time"]


def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL or of a bare path; None for other URLs."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///"))
    if "://" not in database_url:
        return Path(database_url)
    return None


def open_store(database_url: str, *, spool: bool = False, migrate: bool = True) -> Store:
    """Opens (and by default migrates) the store at `database_url`.

    sqlite:///PATH or a bare PATH -> SQLite (the directory is created); postgresql://... ->
    monitor.store.postgres.PostgresStore. `spool` keeps each new measurement's uid in the spool
    for upload to a collector (set when [collector] url is).
    """
    path = sqlite_path(database_url)
    store: Store
    if path is not None:
        from monitor.store.sqlite import SQLiteStore

        store = SQLiteStore(path, spool=spool)
    elif database_url.startswith(("postgresql://", "postgres://")):
        try:
            module = importlib.import_module("monitor.store.postgres")
        except ModuleNotFoundError as error:
            if error.name not in ("psycopg", "monitor.store.postgres"):
                raise
            raise StoreError(f"database {redact_database_url(database_url)!r}: PostgreSQL "
                             "support is not installed "
                             "(pip install 'blockmon[postgres]')") from None
        store = module.PostgresStore(database_url, spool=spool)
    else:
        raise StoreError(f"database {redact_database_url(database_url)!r}: use sqlite:///PATH "
                         "or postgresql://...")
    if migrate:
        store.migrate()
    return store
