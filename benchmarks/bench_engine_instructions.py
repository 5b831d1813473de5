"""The engine alone on N lab URLs, to be counted by callgrind: instructions do not move with load.

The lab and the helper run as subprocesses, which valgrind does not follow, so the count is the
engine's process only (user space; system calls are not counted). Two runs of N1 > N2 URLs give
the instructions per measurement without start-up: (I(N1) - I(N2)) / (N1 - N2).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p.out \\
        .venv/bin/python benchmarks/bench_engine_instructions.py 300
    valgrind ... benchmarks/bench_engine_instructions.py 100     # then subtract

Concurrency is 10 by default: under valgrind the engine is ~50x slower, and 100 URLs at once
would make timeouts fire. `--uvloop` runs the engine and helper on uvloop. Needs root (the lab).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", type=int, nargs="?", default=100)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--uvloop", action="store_true")
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="blockmon-bench-instructions-"))
    lab, info = bench_measure.start_lab(directory, arguments.sites)
    helper, helper_url = bench_measure.start_helper(directory, info, "uvloop" if arguments.uvloop else "asyncio")
    try:
        options = bench_measure.lab_options(info, helper_url)
        urls = bench_measure.bench_urls(arguments.urls, arguments.sites)
        if arguments.uvloop:
            import uvloop  # noqa: PLC0415 - optional: only when asked for

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(bench_measure.run_engine(urls, options, arguments.concurrency))
    finally:
        for process in (helper, lab):
            process.terminate()
            process.wait()
    # Counts are only comparable when the runs judged the same: say so, never hide it.
    print(f"measured {result['measured']}, false positives {len(result['false_positives'])}, "
          f"errors {len(result['errors'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
