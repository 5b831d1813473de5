"""Read-only commands on a SQLite database this user cannot write, and corrupt database files."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.settings import load_settings
from monitor.store import open_store
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
