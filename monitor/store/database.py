"""One database connection and its dialect: URL, connect, placeholders, the one transaction."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote


def redact_database_url(database_url: str) -> str:
    """The URL for messages and logs: no password, neither `user:password@` nor `password=`."""
    head, at, tail = database_url.rpartition("@")
    if at:
        scheme, _, credentials = head.partition("://")
        database_url = f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
    return re.sub(r"(?i)(\bpassword=)[^&\s]*", r"\1***", database_url)


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a blockmon database, bad URL)."""


def is_damaged_database(error: BaseException) -> bool:
    """SQLite's "database disk image is malformed" / "file is not a database": pages of the
    file itself are damaged (a failing SD card, a copy made mid-write), not a query wrong."""
    name = getattr(error, "sqlite_errorname", "")
    return isinstance(error, sqlite3.DatabaseError) and str(name).startswith(
        ("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def damaged_database_message(path: str, error: BaseException) -> str:
    """The one line for a damaged SQLite file: which file, what SQLite said, what to do."""
    return (f"{path}: the SQLite file is damaged ({error}); nothing more was written to it. "
            "Restore it from a backup, or move it aside and start a new one "
            "(docs/reliability.md, \"Damaged database\")")



Dialect = Literal["sqlite", "postgres"]

# Parameters as blockmon's SQL is written: a sequence for `?` marks, a mapping for `:name` ones.
Params = Sequence[Any] | Mapping[str, Any]

# How long a SQLite writer waits for another connection's transaction (`blockmon status` or a
# collector command during a run) before "database is locked". 30 s rather than a shorter wait:
# a collector batch of thousands of rows holds the lock for seconds, and a writer that gives up
# turns into a retried upload.
BUSY_TIMEOUT_SECONDS = 30

# PostgreSQL refuses a connection it cannot make within this long instead of hanging a thread.
CONNECT_TIMEOUT_SECONDS = 10

# `:name` but not the `::` of a cast (`%s::text`) or the minutes of a time literal.
_NAMED_PARAMETER = re.compile(r"(?<!:):([A-Za-z_]\w*)")


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL: a PostgreSQL DSN (postgresql://...) or a SQLite file path."""

    dialect: Dialect
    target: str  # the DSN for PostgreSQL, the file path for SQLite

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        if url.startswith(("postgresql://", "postgres://")):
            return cls("postgres", url)
        if url.startswith("sqlite:///"):
            return cls("sqlite", url.removeprefix("sqlite:///"))
        if "://" in url:
            raise ValueError(
                f"database URL {redact_database_url(url)!r}: use postgresql://user@host:port/db "
                "or a SQLite file path"
            )
        return cls("sqlite", url)

    def describe(self) -> str:
        """The URL without any password, for logs and error messages."""
        if self.dialect == "sqlite":
            return str(Path(self.target))
        return redact_database_url(self.target)

    def store_url(self) -> str:
        """The spelling monitor.store.open_store takes."""
        return self.target if self.dialect == "postgres" else f"sqlite:///{self.target}"


def psycopg_sql(statement: str, params: Params) -> str:
    """blockmon's SQL (`?` or `:name` marks, as sqlite3 takes them) in psycopg's `%s` style."""
    escaped = statement.replace("%", "%%")
    if isinstance(params, Mapping):
        return _NAMED_PARAMETER.sub(r"%(\1)s", escaped)
    return escaped.replace("?", "%s")


class Database:
    """A connection with its dialect; every SQL statement of blockmon outside the stores' own
    methods (reports, alerts, the collector's registry) runs through one of these.

        database.rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        with database.transaction(lock=ALERT_LOCK):   # BEGIN IMMEDIATE / advisory lock
            database.execute("UPDATE ...", (...))

    Blocking and not thread-safe: one thread at a time (monitor.store.threads).
    """

    def __init__(self, connection: Any, dialect: Dialect, description: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.description = description
        self._depth = 0

    def __repr__(self) -> str:
        return f"Database({self.dialect}, {self.description!r})"

    def _cursor(self, statement: str, params: Params) -> Any:
        if self.dialect == "postgres":
            return self.connection.execute(psycopg_sql(statement, params), params)
        return self.connection.execute(statement, params)

    def rows(self, statement: str, params: Params = ()) -> list[dict[str, Any]]:
        """The rows a query (or a statement with RETURNING) gives, as dicts by column name."""
        cursor = self._cursor(statement, params)
        if self.dialect == "postgres":
            return [dict(row) for row in cursor.fetchall()]
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, statement: str, params: Params = ()) -> int:
        """Runs one statement; returns how many rows it changed."""
        return int(self._cursor(statement, params).rowcount)

    def scalar(self, statement: str, params: Params = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        found = self.rows(statement, params)
        return next(iter(found[0].values())) if found else None

    def table_exists(self, name: str) -> bool:
        if self.dialect == "postgres":
            return bool(self.scalar("SELECT to_regclass(?) IS NOT NULL", (name,)))
        return bool(self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (name,)))

    @contextmanager
    def transaction(self, *, lock: int | str | None = None) -> Iterator[None]:
        """All or nothing: commits when the block ends, rolls back when it raises.

        Re-entrant: a transaction opened inside another joins it (an alert recorded while its
        incident is saved is one commit). On SQLite BEGIN IMMEDIATE takes the write lock before
        the first read, so two deciders never read the same row and both write; on PostgreSQL
        `lock` (a number, or text hashed to one) is a transaction-scoped advisory lock that
        serialises the writers holding the same key, across replicas too.
        """
        if self._depth:
            self._take_lock(lock)
            yield
            return
        self._depth = 1
        try:
            if self.dialect == "postgres":
                with self.connection.transaction():
                    self._take_lock(lock)
                    yield
            else:
                self.connection.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException as error:
                    if self.connection.in_transaction:
                        self.connection.execute("ROLLBACK")
                    if is_damaged_database(error):
                        raise StoreError(damaged_database_message(self.description,
                                                                  error)) from None
                    raise
                self.connection.execute("COMMIT")
        finally:
            self._depth = 0

    def _take_lock(self, lock: int | str | None) -> None:
        # SQLite needs none: BEGIN IMMEDIATE already holds the one write lock of the file.
        if lock is None or self.dialect != "postgres":
            return
        if isinstance(lock, int):
            self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        else:
            self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                    (lock,))

    def close(self) -> None:
        self.connection.close()


def _connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    """An existing file opened for reading only (mode=ro): nothing created, nothing written."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None,
                                     check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as error:
        if "unable to open" not in str(error):
            raise
        # A WAL file in a read-only directory without its -shm file (the last writer closed
        # cleanly): SQLite cannot make the shared-memory file, and with nobody able to write
        # there the file cannot change while it is read, so it is opened as immutable.
        connection = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None,
                                     check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
    return connection


def connect_sqlite(path: Path, *, read_only: bool = False) -> Database:
    """A SQLite file in WAL mode, created with its directory when missing; with `read_only`
    an existing file opened without writing to it (a file or directory the user cannot write)."""
    if read_only:
        try:
            connection = _connect_sqlite_read_only(path)
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{path}: cannot open as SQLite database: {error}") from None
        return Database(connection, "sqlite", str(path))
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: Database.transaction begins each transaction explicitly.
        # check_same_thread=False: a store opened on one thread is used and closed on its
        # database thread (monitor.store.threads); one thread at a time still holds.
        connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_SECONDS)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        # Takes effect only on a new file. Measurements are 3-6 KB of JSON: with the default
        # 4 KB pages each row fills a page of its own; 16 KB pages pack them (-25% size).
        connection.execute("PRAGMA page_size = 16384")
        connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits, never corrupts.
        connection.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: cannot open as SQLite database: {error}") from None
    return Database(connection, "sqlite", str(path))


def connect_postgres(dsn: str) -> Database:
    """An autocommit psycopg connection whose rows are dicts."""
    # Imported here: PostgreSQL support is optional (pip install 'blockmon[postgres]').
    import psycopg
    from psycopg.rows import dict_row

    description = redact_database_url(dsn)
    try:
        connection = psycopg.connect(dsn, autocommit=True, row_factory=dict_row,
                                     connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.OperationalError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        raise StoreError(f"database {description}: cannot connect: {first_line}") from None
    return Database(connection, "postgres", description)


def connect(url: DatabaseUrl) -> Database:
    """A fresh connection to the database `url` names."""
    if url.dialect == "postgres":
        return connect_postgres(url.target)
    return connect_sqlite(Path(url.target))


def is_connection_failure(error: BaseException) -> bool:
    """Errors that mean "the database is not reachable now", not "this request is wrong"."""
    if isinstance(error, StoreError):
        return "cannot connect" in str(error)
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error) or "unable to open" in str(error)
    try:
        # Imported here: PostgreSQL support is optional, and without it no error is psycopg's.
        import psycopg
    except ImportError:
        return False
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
