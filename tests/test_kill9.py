"""kill -9 in the middle of a round loses nothing the process said it had stored."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.runner import write_lab_config, write_lab_registry

BLOCKMON = str(Path(sys.executable).parent / "blockmon")
SAVED_LINE = re.compile(r"saved uid=(\S+) url=(\S+)")

pytestmark = pytest.mark.slow


def start_blockmon(config: Path, *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [BLOCKMON, "--config", str(config), "run", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read_lines(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def wait_for_saved(process: subprocess.Popen[str], count: int, timeout: float = 90.0
                   ) -> list[str]:
    """Uids the process logged as stored, once it has logged `count` of them."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stderr, lines), daemon=True).start()
    saved: list[str] = []
    deadline = time.monotonic() + timeout
    while len(saved) < count:
        if process.poll() is not None:
            raise AssertionError(f"blockmon exited early with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"only {len(saved)} measurements stored in {timeout} s")
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        match = SAVED_LINE.search(line)
        if match:
            saved.append(match.group(1))
    return saved


def query(database: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def make_slow_round(tmp_path: Path, lab_info, helper_url: str | None = None
                    ) -> tuple[Path, int]:
    fast = [f"https://ok.lab.test/article/{number}" for number in range(6)]
    # Censored by TLS timeouts: these hold their slots for seconds, so the round is mid-way.
    slow = [f"https://tls-timeout.lab.test/page/{number}" for number in range(4)]
    registry = write_lab_registry(tmp_path / "registry.toml", "killtest",
                                  {"fast": fast, "slow": slow})
    # With a helper: a round without one is degraded (and `run --once` exits 3).
    # No confirmation re-tests: the counts below are one measurement per URL.
    config = write_lab_config(tmp_path, lab_info, registry, "killtest", helper_url=helper_url,
                              extra="[schedule]\nconfirm_retests = 0\n",
                              probe_extra="concurrency = 2\nper_host_limit = 1\n")
    return config, len(fast) + len(slow)


def test_kill_9_mid_round_keeps_every_reported_measurement(tmp_path, lab_info, helper_url):
    config, url_count = make_slow_round(tmp_path, lab_info, helper_url)
    database = tmp_path / "data" / "blockmon.db"

    first = start_blockmon(config, "--once", "--log-level", "info")
    reported = wait_for_saved(first, 3)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL

    assert query(database, "PRAGMA integrity_check") == [("ok",)]
    stored = {uid for (uid,) in query(database, "SELECT uid FROM measurements")}
    assert set(reported) <= stored
    assert len(stored) < url_count  # it really was killed mid-round
    (killed_run,) = query(database, "SELECT status, finished_at FROM runs")
    assert killed_run == ("running", None)

    second = start_blockmon(config, "--once")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "round ok" in out
    assert query(database, "PRAGMA integrity_check") == [("ok",)]
    after = {uid for (uid,) in query(database, "SELECT uid FROM measurements")}
    assert stored <= after
    assert len(after) == len(stored) + url_count
    statuses = sorted(status for (status,) in query(database, "SELECT status FROM runs"))
    assert statuses == ["ok", "running"]
    states = query(database, "SELECT count(*) FROM target_state")
    assert states == [(url_count,)]
