"""Which database a collector URL names, and a DB-API connection to it with its placeholder style."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed `--database`: a PostgreSQL DSN (postgresql://...) or a SQLite file path."""

    dialect: Dialect
    target: str  # the DSN for PostgreSQL, the file path for SQLite

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        if url.startswith(("postgresql://", "postgres://")):
            return cls("postgres", url)
        if url.startswith("sqlite:///"):
            return cls("sqlite", url.removeprefix("sqlite:///"))
        if "://" in url:
            from monitor.store.base import redact_database_url

            raise ValueError(
                f"database URL {redact_database_url(url)!r}: use postgresql://user@host:port/db "
                "or a SQLite file path"
            )
        return cls("sqlite", url)

    def describe(self) -> str:
        """The URL without any password, for logs and error messages."""
        if self.dialect == "sqlite":
            return str(Path(self.target))
        from monitor.store.base import redact_database_url

        return redact_database_url(self.target)


def connect(url: DatabaseUrl) -> Any:
    """A fresh DB-API connection in autocommit mode; `transaction()` groups statements."""
    if url.dialect == "postgres":
        import psycopg  # optional dependency: only the PostgreSQL backend needs it

        return psycopg.connect(url.target, connect_timeout=10, autocommit=True)
    # Closed at shutdown from another thread than the one that used it; never shared meanwhile.
    connection = sqlite3.connect(
        url.target, timeout=30, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


@contextmanager
def transaction(connection: Any, dialect: Dialect) -> Iterator[None]:
    """All or nothing: commit when the block ends, roll back when it raises."""
    if dialect == "postgres":
        with connection.transaction():
            yield
        return
    # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def sql_for(dialect: Dialect, statement: str) -> str:
    """Our SQL is written with `?`; psycopg wants `%s`."""
    if dialect == "postgres":
        return statement.replace("?", "%s")
    return statement
