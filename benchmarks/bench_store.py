"""Store benchmark: insert rate, size per million measurements, status/history/export times."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.state import Observation, decide_next_state  # noqa: E402
from monitor.store import open_store  # noqa: E402
from monitor.store.rows import measurement_row  # noqa: E402
from monitor.store.sqlite import SQLiteStore  # noqa: E402

VANTAGES = ("kz-almaty-1", "kz-astana-1", "kz-shymkent-1")
VERDICTS = (  # (blocking, accessible, method, weight)
    (False, True, None, 80), ("dns", False, "dns.nxdomain", 8), ("http-failure", False,
    "tls.reset", 5), ("http-diff", False, "http.blockpage", 3), (None, None, None, 2),
    (False, False, None, 2),
)


def template_measurement(json_bytes: int) -> dict[str, Any]:
    """A Web Connectivity measurement whose JSON is about `json_bytes` long."""
    base: dict[str, Any] = {
        "measurement_uid": "", "report_id": "run", "input": "",
        "measurement_start_time": "", "test_start_time": "", "test_runtime": 0.84,
        "probe_cc": "KZ", "probe_asn": "AS9198", "probe_network_name": "JSC Kazakhtelecom",
        "probe_ip": "127.0.0.1", "resolver_ip": "203.0.113.53", "resolver_asn": "AS0",
        "resolver_network_name": "", "software_name": "blockmon", "software_version": "0.1.0",
        "test_name": "web_connectivity", "test_version": "0.5.0", "data_format_version": "0.2.0",
        "annotations": {"engine_name": "blockmon", "vantage_id": "", "target_id": "",
                        "list": "briefing"},
        "test_keys": {
            "queries": [{"hostname": "www.example.kz", "query_type": "A", "engine": "udp",
                         "resolver_address": "203.0.113.53:53", "failure": None,
                         "rcode": "NOERROR", "answers": [{"answer_type": "A",
                                                          "ipv4": "192.0.2.10", "ttl": 300}],
                         "t0": 0.001, "t": 0.012}],
            "tcp_connect": [{"ip": "192.0.2.10", "port": 443, "status": {
                "success": True, "failure": None, "blocked": None}, "t0": 0.013, "t": 0.02}],
            "tls_handshakes": [], "requests": [], "control": {}, "control_failure": None,
            "dns_experiment_failure": None, "http_experiment_failure": None,
            "dns_consistency": "consistent", "blocking": False, "accessible": True,
            "blocking_method": None, "fingerprint": None, "sni_differential": [],
            "x_analysis_notes": [],
        },
    }
    # Pad with a response body, as stored measurements mostly are (body_limit truncates).
    padding = max(0, json_bytes - len(json.dumps(base)) - 200)
    body = "<html>" + "x" * padding + "</html>"
    base["test_keys"]["requests"] = [{"request": {"method": "GET", "url": "", "headers": {}},
                                      "response": {"code": 200, "body": body,
                                                   "body_length": len(body)},
                                      "failure": None}]
    return base


def synthetic_rows(count: int, urls: list[str], json_bytes: int,
                   seed: int = 7) -> Iterator[dict[str, Any]]:
    """`count` measurement rows over a year, measured hourly-ish by three vantages."""
    rng = random.Random(seed)
    template = template_measurement(json_bytes)
    weights = [verdict[3] for verdict in VERDICTS]
    start = datetime(2025, 12, 1)
    step = timedelta(days=365) / count
    for number in range(count):
        moment = start + step * number
        url = urls[number % len(urls)]
        vantage = VANTAGES[(number // len(urls)) % len(VANTAGES)]
        blocking, accessible, method, _ = rng.choices(VERDICTS, weights)[0]
        measurement = dict(template)
        measurement["measurement_uid"] = (f"{moment:%Y%m%dT%H%M%S.%f}Z_KZ_webconnectivity_"
                                          f"{number:016x}")
        measurement["input"] = url
        measurement["measurement_start_time"] = f"{moment:%Y-%m-%d %H:%M:%S}"
        measurement["annotations"] = {"engine_name": "blockmon", "vantage_id": vantage,
                                      "target_id": url.split("/")[2], "list": "briefing"}
        measurement["test_keys"] = dict(template["test_keys"], blocking=blocking,
                                        accessible=accessible, blocking_method=method)
        yield measurement_row(measurement, target_id=None, run_id=None, confirmation=0)


def timed(function: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
    """Median wall time in milliseconds over `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--json-bytes", type=int, default=3000)
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to put the database (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-store-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench.db"
    if path.exists():
        path.unlink()
    urls = [f"https://site{number}.example.kz/" for number in range(args.urls)]
    store = open_store(str(path))
    assert isinstance(store, SQLiteStore)

    # Batched inserts: the collector's path (one transaction per upload batch).
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for row in synthetic_rows(args.count, urls, args.json_bytes):
        batch.append(row)
        if len(batch) == args.batch:
            store.save_measurements(batch)
            batch = []
    if batch:
        store.save_measurements(batch)
    batch_seconds = time.perf_counter() - started
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size

    # One transaction per measurement plus its state: the runner's path.
    sample = list(synthetic_rows(2000, urls, args.json_bytes, seed=11))
    started = time.perf_counter()
    for row in sample:
        row = dict(row, uid=row["uid"] + "_single")
        store.save_measurements([row])
        current = store.load_state(row["vantage_id"], row["url"])
        decision = decide_next_state(current, Observation.from_row(row), confirmations_needed=3)
        store.save_state(decision.new_state_row, decision.transition)
    single_seconds = time.perf_counter() - started

    probe_url = urls[3]
    status_ms, states = timed(lambda: store.load_states())
    blocked_ms, _ = timed(lambda: store.load_states(state="blocked"))
    history_ms, _ = timed(lambda: (store.load_transitions(url=probe_url),
                                   list(store.iter_measurements(url=probe_url, order="desc",
                                                                limit=20))))
    day_ms, day_rows = timed(lambda: sum(1 for _ in store.iter_measurements(
        since="2026-06-01", until="2026-06-02")), repeat=3)
    count_ms, _ = timed(lambda: store.count_measurements(since="2026-06-01",
                                                        until="2026-07-01"), repeat=3)
    store.close()

    per_million_gb = size / args.count * 1_000_000 / 1e9
    figures = {
        "measurements": args.count,
        "json_bytes": args.json_bytes,
        "batched_insert_rows_per_second": round(args.count / batch_seconds),
        "single_measurement_with_state_per_second": round(len(sample) / single_seconds),
        "database_gb_per_million": round(per_million_gb, 2),
        "status_ms": round(status_ms, 1),
        "status_rows": len(states),
        "status_blocked_only_ms": round(blocked_ms, 1),
        "history_ms": round(history_ms, 1),
        "export_one_day_ms": round(day_ms, 1),
        "export_one_day_rows": day_rows,
        "count_one_month_ms": round(count_ms, 1),
    }
    print(json.dumps(figures, indent=2))
    if not args.keep:
        for leftover in directory.glob("bench.db*"):
            os.unlink(leftover)
        if args.dir is None:
            shutil.rmtree(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
