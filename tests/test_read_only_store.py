"""Read-only commands on a SQLite database this user cannot write, and corrupt database files."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.settings import load_settings
from monitor.store import open_store
from tests.fixtures.runner import write_lab_config, write_lab_registry
from tests.fixtures.store import synthetic_measurement
from tests.test_read_commands import record

AZATTYQ = "https://www.azattyq.org/"


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file whose probe database (all migrations applied) holds one measurement."""
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    store = open_store(load_settings(path, environ={}).storage.database_url,
                       migration_sets=PROBE_DATABASE)
    store.save_targets([{"id": "azattyq", "name": "Radio Azattyq", "category_code": "NEWS",
                         "list_name": "briefing", "urls": [AZATTYQ]}])
    record(store, synthetic_measurement(url=AZATTYQ), "azattyq")
    store.close()
    return path


def database_file(config: Path) -> Path:
    return Path(load_settings(config, environ={}).storage.database_url.removeprefix("sqlite:///"))


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable(config: Path) -> Iterator[list[Path]]:
    """Makes the paths appended to the yielded list immutable (root cannot write them either);
    undone at the end."""
    paths: list[Path] = []
    try:
        chattr("-i", database_file(config))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("chattr is not available on this file system")
    yield paths
    if paths:
        chattr("-i", *paths)


def snapshot(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.iterdir())}


@pytest.mark.parametrize("locked", ["file", "directory", "both"])
def test_read_commands_work_on_a_database_this_user_cannot_write(
        config: Path, immutable: list[Path], locked: str) -> None:
    database = database_file(config)
    before = snapshot(database.parent)
    locked_paths = {"file": [database], "directory": [database.parent],
                    "both": [database, database.parent]}[locked]
    chattr("+i", *locked_paths)
    immutable.extend(locked_paths)

    status = invoke(config, "status")
    assert status.exit_code == 0, status.output
    assert "accessible" in status.output and AZATTYQ in status.output
    history = invoke(config, "history", AZATTYQ)
    assert history.exit_code == 0, history.output
    exported = invoke(config, "export", "--since", "2026-11-01")
    assert exported.exit_code == 0, exported.output
    assert AZATTYQ in exported.output
    assert "readonly" not in status.output + history.output + exported.output
    chattr("-i", *locked_paths)
    immutable.clear()
    after = snapshot(database.parent)
    assert {name: digest for name, digest in after.items() if name.endswith(".db")} == \
        {name: digest for name, digest in before.items() if name.endswith(".db")}


def test_a_read_only_database_with_migrations_pending_is_named_in_one_line(
        config: Path, immutable: list[Path]) -> None:
    database = database_file(config)
    store = open_store(str(database), migrate=False, migration_sets=PROBE_DATABASE)
    store.database.execute("DELETE FROM schema_migrations WHERE migration_set = 'store' AND "
                           "version = (SELECT max(version) FROM schema_migrations "
                           "WHERE migration_set = 'store')")
    store.close()
    chattr("+i", database, database.parent)
    immutable.extend([database, database.parent])

    result = invoke(config, "status")

    assert result.exit_code == 1
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert str(database) in message
    assert "read-only" in message and "not applied" in message and "store " in message
    assert "Traceback" not in message


def damage_tables(database: Path, *tables: str) -> None:
    """Writes random bytes over the root pages of `tables` and of their indexes, as a failing
    SD card would; the file's first page (its header and schema) stays readable."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
        marks = ", ".join("?" for _ in tables)
        pages = [int(row[0]) for row in connection.execute(
            f"SELECT rootpage FROM sqlite_master WHERE tbl_name IN ({marks}) AND rootpage > 1",
            tables)]
    connection.close()
    assert pages
    with database.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(random.Random(page).randbytes(page_size))


@pytest.mark.parametrize(("tables", "command"), [
    (("target_state",), ("status",)),
    (("state_transitions",), ("history", AZATTYQ)),
    (("measurements",), ("export", "--since", "2026-11-01")),
])
def test_a_damaged_database_is_one_line_naming_the_file(
        config: Path, tables: tuple[str, ...], command: tuple[str, ...]) -> None:
    database = database_file(config)
    damage_tables(database, *tables)

    result = invoke(config, *command)

    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, sqlite3.Error)
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: {database}: the SQLite file is damaged (database disk "
                           "image is malformed)"), line


def test_a_round_on_a_damaged_database_is_degraded_naming_the_file(tmp_path, lab_info,
                                                                  caplog) -> None:
    registry = write_lab_registry(tmp_path / "registry.toml", "lab",
                                  {"honest": ["https://ok.lab.test/"]})
    config = write_lab_config(tmp_path, lab_info, registry, "lab")
    database = tmp_path / "data" / "blockmon.db"
    first = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], obj={})
    assert first.exit_code == 3, first.output  # degraded: no helper in this lab config
    damage_tables(database, "measurements")

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], obj={})

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.stdout + result.stderr
    failures = [record for record in caplog.records if "storing the measurement" in
                record.getMessage()]
    assert failures and all(record.exc_info is None for record in failures)  # one line each
    assert f"1 of 1 measurements not stored (StoreError: {database}: the SQLite file is " \
        "damaged (database disk image is malformed)" in result.stderr
    with sqlite3.connect(database) as connection:
        runs = connection.execute("SELECT status, reason FROM runs ORDER BY started_at").fetchall()
    connection.close()
    assert [status for status, _ in runs] == ["degraded", "degraded"]
    assert f"{database}: the SQLite file is damaged" in runs[1][1]
