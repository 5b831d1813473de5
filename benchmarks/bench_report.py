"""Report benchmark: build (and write) a monthly report over 1,000,000 measurements in that month."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_store import VANTAGES, VERDICTS, template_measurement  # noqa: E402
from monitor.state import Observation, decide_next_state  # noqa: E402
from monitor.store import open_store  # noqa: E402
from monitor.store.rows import TRANSITION_COLUMNS, measurement_row  # noqa: E402
from reports.build import build_report  # noqa: E402
from reports.collect import collect_inputs  # noqa: E402
from reports.periods import parse_period  # noqa: E402
from reports.write import generate_report  # noqa: E402
from targets.model import BriefingClaim, Target, TargetURL  # noqa: E402

PERIOD = parse_period("2026-11")
ASNS = {"kz-almaty-1": ("AS9198", "JSC Kazakhtelecom"), "kz-astana-1": ("AS21299", "Kar-Tel"),
        "kz-shymkent-1": ("AS29355", "Kcell")}


def month_rows(count: int, urls: list[str], json_bytes: int,
               seed: int = 11) -> Iterator[dict[str, Any]]:
    """`count` rows spread evenly over the report's month (the store benchmark's verdict mix)."""
    rng = random.Random(seed)
    template = template_measurement(json_bytes)
    weights = [verdict[3] for verdict in VERDICTS]
    step = (PERIOD.end - PERIOD.start) / count
    for number in range(count):
        moment = PERIOD.start + step * number
        url = urls[number % len(urls)]
        vantage = VANTAGES[(number // len(urls)) % len(VANTAGES)]
        blocking, accessible, method, _ = rng.choices(VERDICTS, weights)[0]
        measurement = dict(template)
        measurement["measurement_uid"] = (f"{moment:%Y%m%dT%H%M%S.%f}Z_KZ_webconnectivity_"
                                          f"{number:016x}")
        measurement["input"] = url
        measurement["measurement_start_time"] = f"{moment:%Y-%m-%d %H:%M:%S}"
        measurement["probe_asn"], measurement["probe_network_name"] = ASNS[vantage]
        measurement["annotations"] = {"engine_name": "blockmon", "vantage_id": vantage,
                                      "target_id": url.split("/")[2], "list": "briefing"}
        measurement["test_keys"] = dict(template["test_keys"], blocking=blocking,
                                        accessible=accessible, blocking_method=method)
        yield measurement_row(measurement, target_id=None, run_id=None, confirmation=0)


def fill(store: Any, count: int, urls: list[str], json_bytes: int) -> None:
    """Measurements in batches, then the state machine over them; transitions in one go."""
    states: dict[tuple[str, str], dict[str, Any]] = {}
    transitions: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    for row in month_rows(count, urls, json_bytes):
        decision = decide_next_state(states.get((row["vantage_id"], row["url"])),
                                     Observation.from_row(row), confirmations_needed=2)
        states[(row["vantage_id"], row["url"])] = decision.new_state_row
        if decision.transition:
            transitions.append(decision.transition)
        batch.append(row)
        if len(batch) == 5000:
            store.save_measurements(batch)
            batch = []
    store.save_measurements(batch)
    for state in states.values():
        store.save_state(state, None)
    columns = ", ".join(TRANSITION_COLUMNS)
    placeholders = ", ".join("?" for _ in TRANSITION_COLUMNS)
    with store.conn:  # a benchmark shortcut: one INSERT for all transitions (SQLite only)
        store.conn.execute("BEGIN")
        store.conn.executemany(
            f"INSERT INTO state_transitions ({columns}) VALUES ({placeholders})",
            [tuple(item[column] for column in TRANSITION_COLUMNS) for item in transitions])
        store.conn.execute("COMMIT")
    print(f"filled: {count:,} measurements, {len(transitions):,} transitions", flush=True)


def targets_for(urls: list[str]) -> list[Target]:
    claim = BriefingClaim("Internet censorship", "synthetic", 150, "2015", "site_blocked")
    return [Target(url.split("/")[2], url.split("/")[2], "NEWS", (TargetURL(url, "home"),),
                   claim if index % 10 == 0 else None, False, "briefing")
            for index, url in enumerate(urls)]


def best_of(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--json-bytes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, default=None,
                        help="reuse this database (filled by an earlier --keep run)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-report-"))
    database = options.db or workdir / "report.db"
    urls = [f"https://site{number:04d}.example.kz/" for number in range(options.urls)]
    try:
        store = open_store(f"sqlite:///{database}")
        if options.db is None:
            started = time.perf_counter()
            fill(store, options.count, urls, options.json_bytes)
            print(f"fill time: {time.perf_counter() - started:.0f} s", flush=True)
        targets = targets_for(urls)
        build_seconds, report = best_of(
            lambda: build_report(collect_inputs(store, PERIOD, targets)), options.repeat)
        print(f"monthly report built (queries + build_report): {build_seconds:.2f} s "
              f"over {report.summary.measurements:,} measurements, "
              f"{len(report.evidence_uids):,} evidence uids", flush=True)
        out_dir = workdir / "out"
        write_seconds, written = best_of(
            lambda: generate_report(store, PERIOD, out_dir, targets=targets), options.repeat)
        size = sum(path.stat().st_size for path in written.directory.rglob("*") if path.is_file())
        print(f"monthly report generated and written (html, md, json, {written.evidence_count:,}"
              f" evidence files, {size / 1e6:.1f} MB): {write_seconds:.2f} s", flush=True)
        store.close()
    finally:
        if options.keep:
            print(f"kept {database}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
