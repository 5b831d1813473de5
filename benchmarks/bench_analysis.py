"""The probe's CPU per measurement outside the network transport, replayed in-process; no network.

`--record DIR` measures lab URLs once (root: the lab and a control helper on loopback, as
bench_measure does) and keeps the whole measurements in DIR. The replay then runs recorded
measurements (`--measurements FILE`, JSON lines), the golden scenarios (tests/golden) and OONI's
real ones (../shared/data/ooni-real, when present) through what the probe does per measurement
besides its network steps, stage by stage:

- dns: reading each recorded reply (rebuilt once as wire bytes) into its query entry;
- asn: annotating the answers with their AS (a small database holding their addresses);
- certificates: describing each presented certificate (from the recorded DER);
- bogons: the bogon check of each answered address (probes/measure.py's filter);
- analysis: the verdict keys, exactly as probes/measure.py's `_analysis_keys` makes them;
- store: the store's `measurements` row (monitor/store/rows.py), its JSON column included.

It prints CPU µs per measurement per stage (the best of --repeat passes, caches warm as in a
long-running probe), the calls per measurement of a few hot built-ins, and a cProfile top list.
Being CPU-only, in-process and deterministic, it compares before and after on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import cProfile
import gc
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rrset  # noqa: E402

from monitor.store.rows import measurement_row  # noqa: E402
from probes.asn import AsnDatabase, AsnInfo, annotate_dns_answers  # noqa: E402
from probes.certificates import describe_certificate, peer_certificate_entry  # noqa: E402
from probes.dns import _record_response  # noqa: E402
from probes.dns_wire import query_template, read_reply  # noqa: E402
from probes.http import is_bogon_address  # noqa: E402
from probes.measure import _analysis_keys  # noqa: E402
from probes.measurement_types import DnsQuery, Measurement, ObservationKeys  # noqa: E402
from probes.ooni.normalise import normalise  # noqa: E402
from probes.options import ProbeIdentity, ProbeOptions  # noqa: E402

GOLDEN = PROJECT_ROOT / "tests" / "golden"
OONI_REAL = PROJECT_ROOT.parent / "shared" / "data" / "ooni-real" / "measurements.jsonl"
# What measure_url adds to the observations: the verdict's keys (and its judged tcp_connect).
ANALYSIS_KEYS = ("blocking", "accessible", "blocking_method", "dns_consistency", "body_length_match",
                 "status_code_match", "headers_match", "title_match", "fingerprint", "x_analysis_notes",
                 "dns_experiment_failure", "http_experiment_failure", "sni_filtering")
# Built-ins whose calls per measurement say how much walking and parsing a stage does.
COUNTED_CALLS = ("isinstance", "method 'get' of 'dict' objects", "_parse_octet", "ip_address",
                 "method 'search' of 're.Pattern' objects", "copy_json")


# ---------------------------------------------------------------- recording (lab, once)


def record(directory: Path, urls: int, sites: int, concurrency: int) -> None:
    """Measure bulk lab URLs and the lab's scenarios with a control; write them to DIRECTORY."""
    from benchmarks.bench_measure import bench_urls, start_helper, start_lab  # noqa: PLC0415
    from probes.measure import measure_many  # noqa: PLC0415

    if os.geteuid() != 0:
        raise SystemExit("bench_analysis --record: the lab needs root")
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="blockmon-bench-analysis-"))
    lab_process, info = start_lab(work, sites)
    helper_process = None
    try:
        helper_process, helper_url = start_helper(work, info, "asyncio")
        options = ProbeOptions(
            identity=ProbeIdentity(probe_cc="KZ", vantage_id="bench"),
            resolvers=(info.censored_resolver,), source_address=info.censored_source,
            ca_file=info.ca_file, lab_public_ranges=(info.public_range,), helper_url=helper_url,
            dns_timeout=1.0, connect_timeout=1.5, tls_timeout=1.5, http_timeout=2.0,
        )
        scenario_hosts = ("ok", "nxdomain", "servfail", "bogon", "tls-reset", "tls-mitm", "cdn",
                          "dynamic", "down", "redirect")
        plain_hosts = ("dns-blockpage", "http-reset", "http-blockpage", "http-diff")
        sets = {
            "bulk": bench_urls(urls, sites),
            "scenarios": [f"https://{h}.lab.test/" for h in scenario_hosts]
                         + [f"http://{h}.lab.test/" for h in plain_hosts],
        }
        for name, targets in sets.items():
            kept: list[Measurement] = []
            asyncio.run(measure_many(targets, options, concurrency, _keeper(kept)))
            with (directory / f"{name}.jsonl").open("w", encoding="utf-8") as stream:
                for measurement in kept:
                    stream.write(json.dumps(measurement, ensure_ascii=False) + "\n")
            print(f"{name}: {len(kept)} measurements in {directory / (name + '.jsonl')}")
        (directory / "recording.json").write_text(json.dumps({"public_range": info.public_range}))
    finally:
        for process in (helper_process, lab_process):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)


def _keeper(kept: list[Measurement]) -> Callable[[str, Measurement | None, str | None], None]:
    def keep(url: str, measurement: Measurement | None, error: str | None) -> None:
        if measurement is not None:
            kept.append(measurement)
    return keep


# ---------------------------------------------------------------- replay cases (set up, untimed)


@dataclass
class Case:
    """One measurement to replay: its observations and what each stage reads, prepared once."""

    name: str
    measurement: dict[str, Any]
    observed: ObservationKeys
    options: ProbeOptions
    # (query entry template, wire reply, question) of each answered DNS query.
    replies: list[tuple[dict[str, Any], bytes, bytes]] = field(default_factory=list)
    ders: list[bytes] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    # A copy of the queries to annotate: the analysis reads the recorded ones, as they were.
    asn_queries: list[DnsQuery] = field(default_factory=list)
    # The recorded (or golden) blocking, accessible and blocking_method: the replay must agree.
    expected: tuple[Any, ...] | None = None


def observations_of(test_keys: dict[str, Any]) -> ObservationKeys:
    """What measure_url hands to the analysis: test_keys without the verdict's keys."""
    observed = {key: value for key, value in test_keys.items() if key not in ANALYSIS_KEYS}
    observed["tcp_connect"] = [_without_blocked(entry) for entry in test_keys.get("tcp_connect") or []]
    return cast(ObservationKeys, observed)


def _without_blocked(entry: dict[str, Any]) -> dict[str, Any]:
    entry = copy.deepcopy(entry)
    if isinstance(entry.get("status"), dict):
        entry["status"].pop("blocked", None)
    return entry


def wire_reply(query: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The reply the resolver sent for a recorded query (id 0), and the query's question."""
    if not isinstance(query.get("rcode"), int) or query.get("query_type") not in ("A", "AAAA"):
        return None
    try:
        return _wire_reply(query)
    except Exception:  # foreign data a resolver could not have sent as such: no reply to replay
        return None


def _wire_reply(query: dict[str, Any]) -> tuple[bytes, bytes]:
    template = query_template(str(query["hostname"]), query["query_type"])
    request = dns.message.from_wire(b"\0\0" + template)
    response = dns.message.make_response(request)
    response.set_rcode(dns.rcode.Rcode(int(query["rcode"])))
    owner = request.question[0].name
    for answer in query.get("answers") or []:
        kind = answer.get("answer_type")
        value = answer.get("hostname") + "." if kind == "CNAME" else answer.get("ipv4") or answer.get("ipv6")
        if kind not in ("A", "AAAA", "CNAME") or not value:
            continue
        response.answer.append(dns.rrset.from_text(owner, int(answer.get("ttl") or 0), "IN", kind, value))
        if kind == "CNAME":
            owner = dns.name.from_text(value)
    return response.to_wire(), template[10:]


def make_case(name: str, measurement: dict[str, Any], public_networks: list[str]) -> Case:
    options = ProbeOptions(lab_public_ranges=tuple(public_networks))
    test_keys = measurement["test_keys"]
    case = Case(name, measurement, observations_of(test_keys), options)
    if "blocking" in test_keys:
        case.expected = verdict_of(test_keys)
    for query in test_keys.get("queries") or []:
        if isinstance(query, dict) and not query.get("x_redirect_hop"):
            made = wire_reply(query)
            if made is not None:
                template = {key: query.get(key) for key in ("hostname", "query_type", "engine",
                                                            "resolver_address", "t0", "t")}
                case.replies.append((template, *made))
            for answer in query.get("answers") or []:
                address = answer.get("ipv4") or answer.get("ipv6")
                if address and address not in case.addresses:
                    case.addresses.append(address)
    case.asn_queries = cast(list[DnsQuery], copy.deepcopy([q for q in test_keys.get("queries") or [] if isinstance(q, dict)]))
    for handshake in test_keys.get("tls_handshakes") or []:
        for certificate in (handshake or {}).get("peer_certificates") or []:
            if isinstance(certificate, dict) and certificate.get("format") == "base64":
                case.ders.append(base64.b64decode(certificate["data"]))
    return case


def verdict_of(keys: dict[str, Any]) -> tuple[Any, ...]:
    return keys.get("blocking"), keys.get("accessible"), keys.get("blocking_method")


def envelope(name: str, test_keys: dict[str, Any]) -> dict[str, Any]:
    """A measurement around golden test_keys, with the fields the store's row needs."""
    return {"measurement_uid": f"20261204T000000.000000Z_ZZ_webconnectivity_{name}", "report_id": "bench",
            "input": name, "measurement_start_time": "2026-12-04 00:00:00", "probe_cc": "ZZ",
            "probe_asn": "AS0", "annotations": {"vantage_id": "bench"}, "test_keys": test_keys}


def load_cases(measurement_files: list[Path], public_range: str | None, with_golden: bool,
               ooni_real: Path) -> dict[str, list[Case]]:
    sets: dict[str, list[Case]] = {}
    for path in measurement_files:
        lines = path.read_text(encoding="utf-8").splitlines()
        sets[path.stem] = [make_case(f"{path.stem}-{n}", json.loads(line), [public_range] if public_range else [])
                           for n, line in enumerate(lines) if line.strip()]
    if with_golden:
        golden = []
        for path in sorted(GOLDEN.glob("*.json")):
            scenario = json.loads(path.read_text(encoding="utf-8"))
            keys = scenario["test_keys"]
            if scenario.get("ooni"):
                keys = normalise({"test_keys": keys})["test_keys"]
            case = make_case(path.stem, envelope(path.stem, keys), scenario.get("public_networks", []))
            expected = scenario["expected"]
            if {"blocking", "accessible", "blocking_method"} <= expected.keys():
                case.expected = verdict_of(expected)
            golden.append(case)
        sets["golden"] = golden
        if ooni_real.exists():
            ooni = []
            for n, line in enumerate(ooni_real.read_text(encoding="utf-8").splitlines()):
                measurement = normalise(json.loads(line))
                # Raw OONI measurements get their uid from OONI's backend; the store needs one.
                measurement.setdefault("measurement_uid", f"ooni-real-{n}")
                case = make_case(f"ooni-{n}", measurement, [])
                case.expected = None  # OONI's verdict, not ours: tests/test_ooni_normalise.py
                ooni.append(case)
            sets["ooni-real"] = ooni
    return sets


# ---------------------------------------------------------------- stages (timed)


def asn_database_for(cases: list[Case]) -> AsnDatabase:
    """One /32 (or /128) range per answered address, sorted as the database wants them."""
    import ipaddress  # noqa: PLC0415

    database = AsnDatabase()
    addresses = sorted({ipaddress.ip_address(a) for case in cases for a in case.addresses},
                       key=lambda a: (a.version, int(a)))
    for number, address in enumerate(addresses, start=1):
        database.add_range(str(address), str(address), AsnInfo(64500 + number, "ZZ", f"BENCH-AS-{number}"))
    return database


def stage_dns(case: Case, _: Any) -> None:
    for template, wire, question in case.replies:
        entry: Any = {**template, "failure": None, "rcode": None, "answers": []}
        reply = read_reply(wire, question)
        if reply is not None:
            _record_response(entry, reply, template["query_type"])


def stage_asn(case: Case, database: AsnDatabase) -> None:
    annotate_dns_answers(case.asn_queries, database)


def stage_certificates(case: Case, _: Any) -> None:
    for der in case.ders:
        describe_certificate(der)
        peer_certificate_entry(der)


def stage_bogons(case: Case, _: Any) -> None:
    for address in case.addresses:
        is_bogon_address(address, case.options)


def stage_analysis(case: Case, _: Any) -> None:
    # measure_url's merge: the verdict's tcp_connect replaces the probe's, in its place.
    case.measurement["test_keys"] = {**case.observed, **_analysis_keys(case.observed, case.options)}


def stage_store(case: Case, _: Any) -> None:
    measurement_row(case.measurement, target_id="bench", run_id="bench", confirmation=0)


STAGES: list[tuple[str, Callable[[Case, Any], None]]] = [
    ("dns", stage_dns), ("asn", stage_asn), ("certificates", stage_certificates),
    ("bogons", stage_bogons), ("analysis", stage_analysis), ("store", stage_store),
]


# Caches of per-measurement data (addresses, certificates, names, words): --cold empties them
# before each pass, as for a round of sites never seen before. Absent ones are skipped.
DATA_CACHES = (("probes.bogons", "parse_ip"), ("probes.bogons", "_cached_is_bogon"),
               ("probes.certificates", "_cached_description"), ("probes.dns_wire", "query_template"),
               ("probes.analysis_compare", "_spread_word"), ("urllib.parse", "urlsplit"))


def empty_data_caches() -> None:
    from probes.fingerprints_load import default_fingerprints  # noqa: PLC0415

    for module, name in DATA_CACHES:
        function = getattr(sys.modules.get(module), name, None)
        if function is not None and hasattr(function, "cache_clear"):
            function.cache_clear()
    memo = getattr(default_fingerprints(), "ca_by_name", None)
    if memo is not None:
        memo.clear()


def time_stages(cases: list[Case], database: AsnDatabase, repeat: int, cold: bool = False) -> dict[str, float]:
    """µs per measurement of each stage: the best of `repeat` passes over every case.

    The garbage collector is off while a pass runs: the replay keeps every measurement alive,
    so a collection would cost far more than in a probe and fall on whichever stage is running.
    """
    figures: dict[str, float] = {}
    for name, stage in STAGES:
        best = float("inf")
        for _ in range(repeat):
            gc.collect()
            if cold:
                empty_data_caches()
            gc.disable()
            started = time.process_time()  # CPU time: a shared machine's waits do not count
            for case in cases:
                stage(case, database)
            best = min(best, time.process_time() - started)
            gc.enable()
        figures[name] = round(best * 1e6 / len(cases), 1)
    figures["total"] = round(sum(figures.values()), 1)
    return figures


def profile_stages(cases: list[Case], database: AsnDatabase, passes: int, top: int) -> dict[str, Any]:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(passes):
        for case in cases:
            for _name, stage in STAGES:
                stage(case, database)
    profile.disable()
    stats = pstats.Stats(profile)
    count = len(cases) * passes
    rows = []
    calls_of: dict[str, float] = dict.fromkeys(COUNTED_CALLS, 0)
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for counted in COUNTED_CALLS:
            if counted == function or (counted.startswith("method") and counted in function) \
                    or (function == f"<built-in method builtins.{counted}>"):
                calls_of[counted] += calls
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}({function})" if line else function
        rows.append((own, calls, cumulative, where))
    rows.sort(reverse=True)
    return {
        # Every Python and built-in call the profiler saw: a deterministic measure of the work.
        "function_calls_per_measurement": round(stats.total_calls / count, 1),  # type: ignore[attr-defined]
        "calls_per_measurement": {name: round(calls / count, 1) for name, calls in calls_of.items()},
        "top_own_time": [f"{own * 1e6 / count:8.1f} µs {calls / count:7.1f} calls  {where}"
                         for own, calls, _, where in rows[:top]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, metavar="DIR", help="measure lab URLs once into DIR (root)")
    parser.add_argument("--urls", type=int, default=500, help="bulk URLs to record")
    parser.add_argument("--sites", type=int, default=100, help="bulk sites of the recording lab")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--measurements", type=Path, nargs="*", default=[],
                        help="recorded JSON-lines files to replay (DIR/bulk.jsonl, DIR/scenarios.jsonl)")
    parser.add_argument("--public-range", default=None,
                        help="the recording lab's public range (default: from DIR/recording.json)")
    parser.add_argument("--no-golden", action="store_true", help="replay only --measurements")
    parser.add_argument("--ooni-real", type=Path, default=OONI_REAL, help="OONI measurements (JSON lines)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per stage (the best counts)")
    parser.add_argument("--cold", action="store_true",
                        help="empty the caches of per-measurement data before each timed pass")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", type=Path, default=None,
                        help="write each replayed measurement's store JSON here (to diff two trees)")
    arguments = parser.parse_args()
    if arguments.record:
        record(arguments.record, arguments.urls, arguments.sites, arguments.concurrency)
        return 0
    public_range = arguments.public_range
    for path in arguments.measurements:
        recording = path.parent / "recording.json"
        if public_range is None and recording.exists():
            public_range = json.loads(recording.read_text())["public_range"]
    sets = load_cases(arguments.measurements, public_range, not arguments.no_golden, arguments.ooni_real)
    everything = [case for cases in sets.values() for case in cases]
    database = asn_database_for(everything)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "repeat": arguments.repeat,
        "cold": arguments.cold,
        "sets": {},
    }
    for name, cases in sets.items():
        if not cases:
            continue
        for case in cases:  # a first pass: caches warm, as in a probe that has run a round
            for _stage_name, stage in STAGES:
                stage(case, database)
        differing = [c.name for c in cases
                     if c.expected is not None and verdict_of(c.measurement["test_keys"]) != c.expected]
        stored = sum(len(measurement_row(c.measurement, target_id=None, run_id=None, confirmation=0)["json"])
                     for c in cases)
        report["sets"][name] = {
            "measurements": len(cases),
            # Replayed verdicts other than the recorded (or golden) ones.
            "verdicts_differing": differing,
            "stored_json_bytes_per_measurement": round(stored / len(cases)),
            "us_per_measurement": time_stages(cases, database, arguments.repeat, arguments.cold),
            "profile": profile_stages(cases, database, max(1, 200 // len(cases)), arguments.top),
        }
    if arguments.dump:
        with arguments.dump.open("w", encoding="utf-8") as stream:
            for case in everything:
                stream.write(measurement_row(case.measurement, target_id=None, run_id=None,
                                             confirmation=0)["json"] + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
