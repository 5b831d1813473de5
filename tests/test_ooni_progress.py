"""`blockmon ooni import` streams its files (bounded memory) and shows its progress."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.commands import ooni as ooni_command
from monitor.ooni.files import read_lines
from monitor.ooni.progress import CLEAR_LINE, ImportProgress
from tests.fixtures.ooni_bulk import OONI_REAL, write_bulk_file

pytestmark = pytest.mark.skipif(not OONI_REAL.exists(), reason=f"{OONI_REAL} is absent")


def _offset_read(path: Path) -> int:
    """How far this process has read `path`: the offset of its open descriptor (Linux /proc)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                fields = Path(f"/proc/self/fdinfo/{fd}").read_text().split()
                return int(fields[fields.index("pos:") + 1])
        except OSError:  # a descriptor closed while listing
            continue
    raise AssertionError(f"{path} is not open")


def test_the_reader_yields_each_measurement_before_reading_the_whole_file(tmp_path):
    path = write_bulk_file(tmp_path / "day.jsonl.gz", 5000, max_line=20000)
    size = path.stat().st_size
    lines = read_lines(path)
    first = next(lines)
    assert first.place == f"{path}:1" and first.measurement is not None
    assert first.measurement["measurement_uid"] == "bulk00000000"
    # One buffer read, not the file: the rest is still on disk when the first measurement is out.
    assert _offset_read(path) < size / 10
    for _ in range(2499):
        line = next(lines)
    assert line.place == f"{path}:2500"
    halfway = _offset_read(path)
    assert size / 3 < halfway < size * 2 / 3
    rest = sum(1 for _ in lines)
    assert rest == 2500


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_count_rate_and_file():
    stream, clock = io.StringIO(), _Clock()
    progress = ImportProgress(stream, is_tty=True, redraw_seconds=0.2, clock=clock)
    for number in range(1, 301):
        clock.now += 0.01  # 100 measurements a second
        progress.read(f"day.jsonl.gz:{number}")
    progress.say("day.jsonl.gz:301: not JSON")
    clock.now += 0.01
    progress.read("day.jsonl.gz:302")
    progress.close()
    text = stream.getvalue()
    assert "\n" not in text.split("day.jsonl.gz:301: not JSON")[0]  # redrawn in place until then
    draws = text.split(CLEAR_LINE)[1:]
    # Drawn at the first measurement, then at most every 0.2 s (20 measurements), not 300 times.
    assert 14 <= len(draws) <= 20
    assert draws[0] == "1 measurements read, 100/s, day.jsonl.gz:1"
    assert "day.jsonl.gz:301: not JSON\n" in draws  # a message on a line of its own
    assert draws[-1] == "301 measurements read, 100/s, day.jsonl.gz:302\n"


def test_elsewhere_a_line_every_n_measurements():
    stream, clock = io.StringIO(), _Clock()
    progress = ImportProgress(stream, is_tty=False, every=100, clock=clock)
    for number in range(1, 251):
        clock.now += 0.02
        progress.read(f"day.jsonl:{number}")
    progress.close()
    assert stream.getvalue().splitlines() == ["... 100 measurements read, 50/s, day.jsonl:100",
                                              "... 200 measurements read, 50/s, day.jsonl:200"]
    assert CLEAR_LINE not in stream.getvalue()


def test_the_import_command_prints_periodic_progress_when_stderr_is_no_terminal(
        tmp_path, monkeypatch):
    monkeypatch.setattr(ooni_command, "PROGRESS_EVERY", 10)
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "bm.db"}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "ooni", "import", str(OONI_REAL)])
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("... ")]
    assert [line.split(" measurements")[0] for line in progress] == ["... 10", "... 20"]
    assert progress[1].endswith(f"/s, {OONI_REAL}:20")
    assert CLEAR_LINE not in result.output
