"""Measurement engine throughput: 2,000 lab URLs with control at concurrency 100, against curl.

Per process (engine = the probe, helper, lab): CPU ms per measurement and peak RSS. `--profile`
runs the engine under cProfile and adds the split of its CPU (steps, analysis, serialisation).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from lab import LabInfo, bulk_hostname  # noqa: E402
from probes.measure import measure_many, prepare  # noqa: E402
from probes.options import ProbeIdentity, ProbeOptions  # noqa: E402

START_TIMEOUT = 60.0


def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str,
                  timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()  # a lab still starting would otherwise outlive the benchmark
            raise SystemExit(f"{what} did not start (exit {process.poll()})")
        time.sleep(0.05)


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start (exit {process.poll()})") from None
            time.sleep(0.1)


def start_lab(directory: Path, bulk_sites: int,
              timeout: float = START_TIMEOUT) -> tuple[subprocess.Popen[bytes], LabInfo]:
    """`python -m lab` with bulk sites; killed again if it does not come up within `timeout`."""
    info_file = directory / "lab-info.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "--workdir", str(directory / "lab"), "--info-file", str(info_file),
         "--bulk-sites", str(bulk_sites)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=(directory / "lab.log").open("wb"),
    )
    wait_for_file(info_file, process, f"the lab (see {directory / 'lab.log'})", timeout)
    return process, LabInfo.from_json(info_file.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_helper(directory: Path, info: LabInfo, event_loop: str) -> tuple[subprocess.Popen[bytes], str]:
    """The control helper on the honest side of the lab, on the same event loop as the engine."""
    port = free_port()
    blockmon = str(Path(sys.executable).parent / "blockmon")
    process = subprocess.Popen(
        [blockmon, "helper", "--listen", f"127.0.0.1:{port}", "--resolver", info.honest_resolver,
         "--ca-file", info.ca_file, "--lab-public-range", info.public_range],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=(directory / "helper.log").open("wb"),
        env=os.environ | {"BLOCKMON_EVENT_LOOP": event_loop},
    )
    wait_for_port("127.0.0.1", port, process, "the helper")
    return process, f"http://127.0.0.1:{port}/"


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of another process (its peak resident set), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_user_system(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return sum(cpu_user_system(pid))


def lab_options(info: LabInfo, helper_url: str | None) -> ProbeOptions:
    """A probe at the lab's censored vantage, with the lab's CA, ranges and resolver."""
    return ProbeOptions(
        identity=ProbeIdentity(probe_cc="KZ", vantage_id="bench"),
        resolvers=(info.censored_resolver,),
        source_address=info.censored_source,
        ca_file=info.ca_file,
        lab_public_ranges=(info.public_range,),
        helper_url=helper_url,
    )


def bench_urls(count: int, sites: int) -> list[str]:
    return [f"https://{bulk_hostname(n % sites + 1)}/page/{n // sites}" for n in range(count)]


def serialise(measurement: dict) -> str:
    """What the store keeps of each measurement (monitor/store/rows.py's `json` column)."""
    return json.dumps(measurement, ensure_ascii=False, separators=(",", ":"))


# The profile's split of the engine's CPU: the first group whose pattern is in a function's
# file name (or, for built-ins, its name) gets that function's own time.
PROFILE_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("analysis", ("probes/analysis", "probes/fingerprints", "probes/pattern_hints", "probes/bogons",
                  "probes/certificates")),
    ("serialisation", ("json/", "_json", "method 'encode' of '_json")),
    ("dns", ("probes/dns", "dns/", "probes/asn")),
    ("tls", ("ssl.py", "sslproto.py", "_ssl.", "probes/tls")),
    ("http", ("aiohttp/", "multidict", "yarl/", "probes/http")),
    ("control", ("probes/control",)),
    ("tcp", ("probes/tcp", "socket.py", "method 'connect", "method 'recv", "method 'send")),
    ("steps", ("probes/measure", "probes/endpoints", "probes/options")),
    ("event loop", ("asyncio/", "selectors.py", "method 'poll'", "method 'control'", "events.py")),
]


def profile_split(profile: cProfile.Profile, measured: int) -> dict:
    """The engine's profiled time per group in ms per measurement, and the top functions."""
    stats = pstats.Stats(profile)
    groups: dict[str, float] = {name: 0.0 for name, _ in PROFILE_GROUPS} | {"other": 0.0}
    rows = []
    for (filename, line, function), (_, calls, own, _cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        group = next((name for name, patterns in PROFILE_GROUPS if any(p in where for p in patterns)), "other")
        groups[group] += own
        rows.append((own, calls, f"{Path(filename).name}:{line}({function})", group))
    rows.sort(reverse=True)
    per = max(measured, 1)
    return {
        "ms_per_measurement": {name: round(seconds * 1000 / per, 3) for name, seconds in groups.items()},
        "total_ms_per_measurement": round(sum(groups.values()) * 1000 / per, 3),
        "top_functions": [f"{own * 1000 / per:.3f} ms {calls} calls {name} [{group}]"
                          for own, calls, name, group in rows[:30]],
        "top_other": [f"{own * 1000 / per:.3f} ms {calls} calls {name}"
                      for own, calls, name, group in rows if group == "other"][:15],
    }


async def run_engine(urls: list[str], options: ProbeOptions, concurrency: int) -> dict:
    runtimes: list[float] = []
    stored_bytes = 0
    false_positives: list[str] = []
    errors: list[str] = []

    def on_result(url: str, measurement: dict | None, error: str | None) -> None:
        nonlocal stored_bytes
        if measurement is None:
            errors.append(f"{url}: {error}")
            return
        runtimes.append(measurement["test_runtime"])
        stored_bytes += len(serialise(measurement))
        keys = measurement["test_keys"]
        # Every bulk site is honest: anything but "not blocked" is a false positive.
        if keys["blocking"] is not False:
            false_positives.append(f"{url}: {keys['blocking']} {keys['blocking_method']} {keys['x_analysis_notes']}")

    started = time.monotonic()
    await measure_many(urls, options, concurrency, on_result)
    elapsed = time.monotonic() - started
    runtimes.sort()
    return {
        "measured": len(runtimes),
        "seconds": elapsed,
        "rate": len(runtimes) / elapsed,
        "p50": statistics.median(runtimes) if runtimes else None,
        "p95": runtimes[int(len(runtimes) * 0.95) - 1] if runtimes else None,
        "false_positives": false_positives,
        "errors": errors,
        "stored_bytes": stored_bytes,
    }


# curl's ways of fetching the same pages. Each is `curl --silent --parallel --parallel-immediate
# --parallel-max N --http1.1 --cacert CA --write-out ... --config FILE` with these lines added to
# the config (besides one `resolve` per site and `url`/`output` per page).
CURL_MODES: dict[str, list[str]] = {
    # The fair comparison: like the probe, a new connection and a full TLS handshake per page.
    "fresh": ['header = "Connection: close"', "no-sessionid"],
    # A new connection per page, but TLS sessions resumed (curl's default cache): cheaper handshakes.
    "resumed": ['header = "Connection: close"'],
    # curl's default: connections kept alive and reused, no handshake after the first per site.
    "keepalive": [],
}


def curl_command(concurrency: int, ca_file: str, config: Path) -> list[str]:
    return ["curl", "--silent", "--parallel", "--parallel-immediate", "--parallel-max", str(concurrency),
            "--http1.1", "--cacert", ca_file, "--write-out", "%{http_code}\n", "--config", str(config)]


def run_curl(urls: list[str], info: LabInfo, sites: int, concurrency: int, directory: Path, mode: str,
             lab_pid: int) -> dict:
    """curl fetching the same pages in one of CURL_MODES; the rate counts pages answered 200.

    The CPU curl and the lab spend per page is measured too: it is what the 2 cores share.
    """
    config = directory / f"curl-{mode}.cfg"
    lines = []
    for n in range(1, sites + 1):
        hostname = bulk_hostname(n)
        lines.append(f'resolve = "{hostname}:443:{info.site_addresses[hostname]}"')
    lines += CURL_MODES[mode]
    for url in urls:
        lines += [f'url = "{url}"', 'output = "/dev/null"']
    config.write_text("\n".join(lines) + "\n")
    lab_cpu_before = cpu_seconds(lab_pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run(curl_command(concurrency, info.ca_file, config),
                               capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    curl_cpu = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime - children_before.ru_stime)
    ok = sum(1 for code in completed.stdout.split() if code == "200")
    return {"fetched": ok, "seconds": elapsed, "rate": ok / elapsed,
            "cpu_ms_per_page": {"curl": round(curl_cpu * 1000 / max(ok, 1), 2),
                                "lab": round((cpu_seconds(lab_pid) - lab_cpu_before) * 1000 / max(ok, 1), 2)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--pages-per-site", type=int, default=None,
                        help="measure SITES x PAGES URLs (overrides --urls); 1 = every URL a distinct site")
    parser.add_argument("--profile", action="store_true",
                        help="run the engine under cProfile and report the split of its CPU (slower)")
    parser.add_argument("--profile-file", type=Path, default=None, help="also write the raw cProfile stats here")
    parser.add_argument("--uvloop", action="store_true", help="run the engine on uvloop (pip install uvloop)")
    parser.add_argument("--no-curl", action="store_true", help="skip the curl comparison")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--no-helper", action="store_true", help="measure without a control helper")
    arguments = parser.parse_args()
    if arguments.pages_per_site is not None:
        arguments.urls = arguments.sites * arguments.pages_per_site
    if os.geteuid() != 0:
        print("bench_measure: the lab needs root; skipped")
        return 0
    directory = Path(tempfile.mkdtemp(prefix="blockmon-bench-measure-"))
    lab_process, info = start_lab(directory, arguments.sites)
    helper_process = None
    try:
        helper_url = None
        if not arguments.no_helper:
            helper_process, helper_url = start_helper(directory, info, "uvloop" if arguments.uvloop else "asyncio")
        options = lab_options(info, helper_url)
        urls = bench_urls(arguments.urls, arguments.sites)
        pids = {"engine": os.getpid(), "lab": lab_process.pid}
        if helper_process:
            pids["helper"] = helper_process.pid
        # The engine's one-off work (the fingerprints' case tables, ~0.3 s) is done once per
        # process, as the monitor does before its first round: not a cost per measurement.
        prepare_started = time.process_time()
        prepare(options)
        prepare_seconds = time.process_time() - prepare_started
        cpu_before = {name: cpu_user_system(pid) for name, pid in pids.items()}
        profile = cProfile.Profile() if arguments.profile else None
        if profile is not None:
            profile.enable()
        if arguments.uvloop:
            import uvloop  # noqa: PLC0415 - optional: only when asked for

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        engine = asyncio.run(run_engine(urls, options, arguments.concurrency))
        if profile is not None:
            profile.disable()
            if arguments.profile_file:
                profile.dump_stats(arguments.profile_file)
        # CPU per measurement shows which process the 2 shared cores went to.
        # System time counts too: on loopback the sender's system calls also run the receiver's
        # network stack, so a process's kernel share is part of what it costs the machine.
        per_measurement = 1000 / max(engine["measured"], 1)
        cpu_after = {name: cpu_user_system(pid) for name, pid in pids.items()}
        cpu_ms = {name: round((sum(cpu_after[name]) - sum(cpu_before[name])) * per_measurement, 2) for name in pids}
        cpu_user_system_ms = {name: [round((cpu_after[name][part] - cpu_before[name][part]) * per_measurement, 2)
                                     for part in (0, 1)] for name in pids}
        engine_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        helper_rss = peak_rss_mb(helper_process.pid) if helper_process else None
        lab_rss = peak_rss_mb(lab_process.pid)
        curl: dict[str, dict] = {}
        if shutil.which("curl") and not arguments.no_curl:
            for mode in CURL_MODES:
                curl[mode] = run_curl(urls, info, arguments.sites, arguments.concurrency, directory, mode,
                                      lab_process.pid)
    finally:
        for process in (helper_process, lab_process):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "urls": len(urls),
        "sites": arguments.sites,
        "profiled": profile is not None,
        "event_loop": "uvloop" if arguments.uvloop else "asyncio",
        "concurrency": arguments.concurrency,
        "control": helper_url is not None,
        "measured": engine["measured"],
        "measurements_per_second": round(engine["rate"], 1),
        "p50_seconds": engine["p50"] and round(engine["p50"], 3),
        "p95_seconds": engine["p95"] and round(engine["p95"], 3),
        "peak_rss_mb": {"engine": round(engine_rss, 1), "helper": helper_rss and round(helper_rss, 1),
                        "lab": lab_rss and round(lab_rss, 1)},
        "cpu_ms_per_measurement": cpu_ms,
        "cpu_ms_user_system": cpu_user_system_ms,
        "engine_prepare_cpu_seconds": round(prepare_seconds, 3),
        "stored_bytes_per_measurement": round(engine["stored_bytes"] / max(engine["measured"], 1)),
        "false_positives": len(engine["false_positives"]),
        "errors": len(engine["errors"]),
        "curl_pages_per_second": {mode: round(result["rate"], 1) for mode, result in curl.items()},
        "curl_pages_fetched": {mode: result["fetched"] for mode, result in curl.items()},
        "curl_cpu_ms_per_page": {mode: result["cpu_ms_per_page"] for mode, result in curl.items()},
        # Against the fresh mode: one connection and one full handshake per page, as the probe.
        "ratio_to_curl": round(engine["rate"] / curl["fresh"]["rate"], 2) if "fresh" in curl else None,
        "ratio_to_curl_resumed": round(engine["rate"] / curl["resumed"]["rate"], 2) if "resumed" in curl else None,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    if profile is not None:
        report["profile"] = profile_split(profile, engine["measured"])
    for line in (engine["false_positives"] + engine["errors"])[:10]:
        print("  " + line, file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
