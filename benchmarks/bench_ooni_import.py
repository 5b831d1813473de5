"""`blockmon ooni import` of a JSONL.gz file: measurements/s and peak memory at two file sizes.

    .venv/bin/python benchmarks/bench_ooni_import.py [--small N] [--large N]

Each file holds OONI's 24 real measurements of ../shared/data/ooni-real in turn (1.8 KB to 817 KB
of JSON each, 117 KB on average), each with its own uid, gzipped; each size is imported by a real
`blockmon ooni import` process into a fresh SQLite store. Memory is that process's peak RSS
(wait4's ru_maxrss): streaming keeps it flat as the file grows.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.ooni_bulk import write_bulk_file  # noqa: E402


def import_once(directory: Path, count: int) -> tuple[float, float, int]:
    """Seconds, peak RSS in MB, and the compressed size of a `count`-measurement import."""
    path = write_bulk_file(directory / f"bulk-{count}.jsonl.gz", count)
    config = directory / f"blockmon-{count}.toml"
    config.write_text(f'[storage]\ndatabase = "sqlite:///{directory / f"bm-{count}.db"}"\n',
                      encoding="utf-8")
    command = [sys.executable, "-c", "from monitor.cli import cli; cli()",
               "--config", str(config), "ooni", "import", str(path)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    errors = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"import of {count} failed: {errors[-500:]}")
    summary = errors.strip().splitlines()[-1]
    if f"{count} stored" not in summary:
        raise RuntimeError(f"import of {count}: {summary}")
    return seconds, usage.ru_maxrss / 1024, path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-ooni-") as temporary:
        for count in (args.small, args.large):
            seconds, peak_mb, size = import_once(Path(temporary), count)
            print(f"{count} measurements ({size / 1e6:.0f} MB gzipped): {seconds:.1f} s, "
                  f"{count / seconds:.0f} measurements/s, peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
