"""Control helper soak: 20,000 control requests at concurrency 100 to many distinct lab sites.

A `blockmon helper` subprocess on the lab's honest side answers what a probe would ask (one
https URL and the address the probe resolved); this reports the helper's CPU per request, its
peak RSS and its RSS along the way (after 2k, 10k and 20k requests), then a cProfile summary of
a second, shorter run of a profiled helper. Needs root (the lab).
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.selector_events
import asyncio.sslproto
import inspect
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

# Run as a script, this folder is on sys.path: the lab and process helpers of the engine's bench.
from bench_measure import cpu_seconds, free_port, peak_rss_mb, start_lab, wait_for_port

from lab import LabInfo, bulk_hostname
from probes.control_protocol import build_control_request
from probes.http import REQUEST_HEADERS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = (2_000, 10_000, 20_000)
# A lab of 5,000 sites makes 5,000 certificates first: on 2 loaded cores that takes minutes.
LAB_START_TIMEOUT = 600.0
# Functions whose inclusive time says where a control request goes (the profile's summary).
PROFILED_STEPS = {
    "request, end to end": ("app.py", "handle_control"),
    "endpoint check (TCP + TLS)": ("steps.py", "check_endpoint"),
    "TLS handshakes (start_tls)": ("streams.py", "start_tls"),
    "page fetch": ("page.py", "fetch_page"),
    "DNS lookups": ("dns.py", "probe_dns"),
    "body simhash": ("analysis_compare.py", "text_simhash"),
    "answer JSON": ("web_response.py", "json_response"),
}


CONSTRUCTORS = {
    "TLS connections (asyncio SSLProtocol)": asyncio.sslproto.SSLProtocol.__init__,
    "TCP transports (incl. the bench's own, kept alive)": asyncio.selector_events._SelectorSocketTransport.__init__,  # type: ignore[attr-defined]
    "datagram endpoints (DNS sockets)": asyncio.selector_events._SelectorDatagramTransport.__init__,  # type: ignore[attr-defined]
}


def rss_mb(pid: int) -> float | None:
    """VmRSS of another process (its resident set now), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_split_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def start_helper(directory: Path, info: LabInfo, profile_file: Path | None,
                 code: Path = PROJECT_ROOT, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """`blockmon helper` on the lab's honest side, run from the tree `code` (for before/after
    comparisons: `git archive` of another commit); under cProfile when profile_file is given."""
    port = free_port()
    arguments = ["helper", "--listen", f"127.0.0.1:{port}", "--resolver", info.honest_resolver,
                 "--ca-file", info.ca_file, "--lab-public-range", info.public_range, *extra]
    # `python -c` puts the working directory first on sys.path: the helper's code comes from `code`.
    main = "from monitor.cli import main; main()"
    if profile_file is None:
        script = f"import sys; sys.argv = ['blockmon'] + sys.argv[1:]; {main}"
    else:
        # cProfile.run writes the file when main() returns, which SIGTERM lets it do.
        script = ("import cProfile, sys; sys.argv = ['blockmon'] + sys.argv[1:]; "
                  f"cProfile.run({main!r}, {str(profile_file)!r})")
    command = [sys.executable, "-c", script, *arguments]
    process = subprocess.Popen(command, cwd=code, stdout=subprocess.DEVNULL,
                               stderr=(directory / "helper.log").open("ab"))
    wait_for_port("127.0.0.1", port, process, "the helper")
    return process, f"http://127.0.0.1:{port}/"


def control_requests(info: LabInfo, count: int, sites: int) -> list[dict[str, Any]]:
    """What probes would ask: site n % sites, page n // sites, with the honest address."""
    requests = []
    for n in range(count):
        hostname = bulk_hostname(n % sites + 1)
        url = f"https://{hostname}/page/{n // sites}"
        requests.append(dict(build_control_request(url, [info.site_addresses[hostname]], REQUEST_HEADERS)))
    return requests


def answer_problem(status: int, answer: dict[str, Any]) -> str | None:
    """Why an answer is not what an honest lab site gives, or None."""
    if status != 200:
        return f"status {status}: {answer.get('error')}"
    http = answer.get("http_request") or {}
    if http.get("status_code") != 200 or http.get("failure"):
        return f"http_request {http.get('status_code')} {http.get('failure')}"
    handshakes = answer.get("tls_handshake") or {}
    if not handshakes or not all(entry.get("status") for entry in handshakes.values()):
        return f"tls_handshake {handshakes}"
    extra = answer.get("x_blockmon") or {}
    if not extra.get("body_sha256") or not extra.get("body_simhash"):
        return "x_blockmon without body hashes"
    return None


async def drive(helper_url: str, requests: list[dict[str, Any]], concurrency: int, pid: int) -> dict[str, Any]:
    """Send every request with `concurrency` in flight; sample the helper's RSS at checkpoints."""
    problems: dict[str, int] = {}
    samples: dict[int, float | None] = {}
    done = 0
    position = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done, position
        while position < len(requests):
            body = requests[position]
            position += 1
            async with session.post(helper_url, json=body) as reply:
                answer = await reply.json()
                problem = answer_problem(reply.status, answer)
            if problem is not None:
                problems[problem] = problems.get(problem, 0) + 1
            done += 1
            if done in CHECKPOINTS or done % 1000 == 0:
                samples[done] = rss_mb(pid)

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"seconds": elapsed, "problems": problems, "rss_samples": samples}


def soak(directory: Path, info: LabInfo, requests: list[dict[str, Any]], concurrency: int,
         lab_pid: int, idle_seconds: float, code: Path, extra: tuple[str, ...]) -> dict[str, Any]:
    helper, helper_url = start_helper(directory, info, None, code, extra)
    try:
        rss_at_start = rss_mb(helper.pid)
        cpu_before = {"helper": cpu_seconds(helper.pid), "lab": cpu_seconds(lab_pid)}
        split_before = cpu_split_seconds(helper.pid)
        bench_before = time.process_time()
        load_before = os.getloadavg()
        result = asyncio.run(drive(helper_url, requests, concurrency, helper.pid))
        count = len(requests)
        cpu_ms: dict[str, float | str] = {name: round((cpu_seconds(pid) - cpu_before[name]) * 1000 / count, 2)
                  for name, pid in (("helper", helper.pid), ("lab", lab_pid))}
        cpu_ms["bench client"] = round((time.process_time() - bench_before) * 1000 / count, 2)
        user, system = (after - before for after, before in zip(cpu_split_seconds(helper.pid), split_before, strict=True))
        cpu_ms["helper user / system"] = f"{user * 1000 / count:.2f} / {system * 1000 / count:.2f}"
        # Idle for a moment: what is still held once the keep-alive and cache TTLs run out.
        time.sleep(idle_seconds)
        rss_idle = rss_mb(helper.pid)
        peak = peak_rss_mb(helper.pid)
    finally:
        helper.terminate()
        helper.wait(timeout=30)
    samples = result["rss_samples"]
    return {
        "requests": count,
        "seconds": round(result["seconds"], 1),
        "requests_per_second": round(count / result["seconds"], 1),
        "cpu_ms_per_request": cpu_ms,
        "helper_rss_mb": {"start": rss_at_start, **{f"after {n:,}": samples.get(n) for n in CHECKPOINTS},
                          f"{idle_seconds:g} s idle after the last": rss_idle, "peak (VmHWM)": peak and round(peak, 1)},
        "helper_rss_mb_every_1000": [samples[n] for n in sorted(samples) if n % 1000 == 0],
        "answers_not_honest": result["problems"],
        "load_average_before_after": [[round(v, 2) for v in load_before],
                                      [round(v, 2) for v in os.getloadavg()]],
    }


def profile(directory: Path, info: LabInfo, requests: list[dict[str, Any]], concurrency: int,
            top: int, code: Path) -> dict[str, Any]:
    """A shorter run of a helper under cProfile: where its CPU goes, per request."""
    profile_file = directory / "helper.prof"
    helper, helper_url = start_helper(directory, info, profile_file, code)
    try:
        result = asyncio.run(drive(helper_url, requests, concurrency, helper.pid))
    finally:
        helper.terminate()
        helper.wait(timeout=60)
    stats = pstats.Stats(str(profile_file))
    count = len(requests)
    entries = stats.stats  # type: ignore[attr-defined]
    by_self = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]

    def name(key: tuple[str, int, str]) -> str:
        file, line, function = key
        return f"{Path(file).name}:{line}({function})" if line else function

    steps: dict[str, float] = {}
    for label, (file_suffix, function) in PROFILED_STEPS.items():
        total = sum(value[3] for key, value in entries.items()
                    if key[0].endswith(file_suffix) and key[2] == function)
        steps[label] = round(total * 1000 / count, 3)
    # Objects made per request, counted by their constructors (the helper runs this same Python).
    made: dict[str, float] = {}
    for label, function in CONSTRUCTORS.items():
        file, line = inspect.getsourcefile(function), inspect.getsourcelines(function)[1]
        calls = sum(value[1] for key, value in entries.items() if key[0] == file and key[1] == line)
        made[label] = round(calls / count, 2)
    return {
        "requests": count,
        "answers_not_honest": result["problems"],
        # Inclusive (cumulative) time; coroutines count only while they run, not while awaiting.
        "inclusive_ms_per_request": steps,
        # Deterministic where CPU times are not (a loaded machine): Python calls one request makes.
        "function_calls_per_request": round(stats.total_calls / count, 1),  # type: ignore[attr-defined]
        "made_per_request": made,
        "top_self_time_ms_per_request": {name(key): round(value[2] * 1000 / count, 3) for key, value in by_self},
    }


async def ask_each(helper_url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    answers = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for body in bodies:
            async with session.post(helper_url, json=body) as reply:
                answers.append((reply.status, await reply.json()))
    return answers


def compare_answers(directory: Path, info: LabInfo, codes: tuple[Path, Path]) -> dict[str, Any]:
    """Both trees' helpers asked about every catalogue host of the lab, http and https: the
    answers that differ (the Date header aside)."""
    bodies = [dict(build_control_request(f"{scheme}://{host}/", [ip] if (ip := info.site_addresses.get(host)) else [],
                                         REQUEST_HEADERS))
              for host in sorted(info.hosts) for scheme in ("http", "https")]
    answers = []
    for code in codes:
        helper, helper_url = start_helper(directory, info, None, code)
        try:
            answers.append(asyncio.run(ask_each(helper_url, bodies)))
        finally:
            helper.terminate()
            helper.wait(timeout=30)
    for status_and_answers in answers:
        for _, answer in status_and_answers:
            headers = (answer.get("http_request") or {}).get("headers") or {}
            for name in [name for name in headers if name.lower() == "date"]:
                headers[name] = "(date)"
    different = [body["http_request"] for body, first, second in zip(bodies, *answers, strict=True)
                 if first != second]
    return {"asked": len(bodies), "different": different}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=5_000, help="distinct lab sites (at most 5,000)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--profile-requests", type=int, default=3_000,
                        help="requests of the profiled run (0: no profile)")
    parser.add_argument("--idle-seconds", type=float, default=35.0,
                        help="wait after the soak before the last RSS sample (TTLs run out)")
    parser.add_argument("--helper-code", type=Path, default=PROJECT_ROOT,
                        help="run the helper from this source tree (e.g. a `git archive` of main)")
    parser.add_argument("--helper-option", action="append", default=[], metavar="ARG",
                        help="one more argument for `blockmon helper` (repeatable), e.g. --helper-option=--cache-ttl=0")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="TREE",
                        help="also ask this tree's helper and this one about every catalogue host; list differences")
    parser.add_argument("--top", type=int, default=20, help="functions listed by self time")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_helper: the lab needs root; skipped")
        return 0
    directory = Path(tempfile.mkdtemp(prefix="blockmon-bench-helper-"))
    lab_process, info = start_lab(directory, arguments.sites, LAB_START_TIMEOUT)
    try:
        requests = control_requests(info, max(arguments.requests, arguments.profile_requests), arguments.sites)
        report: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "sites": arguments.sites,
            "concurrency": arguments.concurrency,
            "helper_code": str(arguments.helper_code),
            "helper_options": arguments.helper_option,
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        }
        if arguments.requests:
            report["soak"] = soak(directory, info, requests[: arguments.requests], arguments.concurrency, lab_process.pid,
                                  arguments.idle_seconds, arguments.helper_code,
                                  tuple(arguments.helper_option))
        if arguments.compare_with is not None:
            report["answers_compared"] = compare_answers(directory, info,
                                                         (arguments.compare_with, arguments.helper_code))
        if arguments.profile_requests:
            # Sites not asked by the soak's first pass would be as new; these ones are, to this helper.
            report["profile"] = profile(directory, info, requests[: arguments.profile_requests],
                                        arguments.concurrency, arguments.top, arguments.helper_code)
    finally:
        lab_process.terminate()
        try:
            lab_process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            lab_process.kill()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
