"""Alert latency in the lab: a block appears at a random moment; time until the webhook has it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from aiohttp import web  # noqa: E402

SITES = [f"news{number}.lab.test" for number in range(1, 9)]
CONTROL = "control.lab.test"


def write_registry(path: Path) -> None:
    lines = ['[list]\nname = "bench"\n']
    for host in [*SITES, CONTROL]:
        target_id = host.split(".")[0]
        lines.append(f'[[target]]\nid = "{target_id}"\nname = "{host}"\ncategory_code = "NEWS"\n'
                     + ("control = true\n" if host == CONTROL else "")
                     + f'[[target.url]]\nurl = "https://{host}/"\nrole = "home"\n')
    path.write_text("\n".join(lines), encoding="utf-8")


def write_config(directory: Path, lab_info: Any, helper_url: str, webhook_url: str,
                 registry: Path, check_interval: int) -> Path:
    config = directory / "blockmon.toml"
    config.write_text(
        "[probe]\n"
        'vantage_id = "bench-kz"\ncc = "KZ"\nasn = "AS9198"\n'
        f'resolvers = ["{lab_info.censored_resolver}"]\n'
        f'source_address = "{lab_info.censored_source}"\n'
        f'ca_file = "{lab_info.ca_file}"\n'
        f'lab_public_ranges = ["{lab_info.public_range}"]\n'
        f'helper_url = "{helper_url}"\n'
        "dns_timeout = 1.0\nconnect_timeout = 2.0\ntls_timeout = 2.0\nhttp_timeout = 3.0\n"
        "control_timeout = 10.0\n"
        f'[storage]\ndata_dir = "{directory / "data"}"\n'
        f'[targets]\nregistry = "{registry}"\nlists = ["bench"]\n'
        "[alerts]\nenabled = true\n"
        f'webhook_url = "{webhook_url}"\nwebhook_secret = "bench"\n'
        f"check_interval_seconds = {check_interval}\n", encoding="utf-8")
    return config


class Receiver:
    """The webhook end: notes when each target's block_confirmed alert arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.kinds: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        arrived = time.monotonic()
        alerts = body["alerts"] if body.get("kind") == "digest" else [body]
        for alert in alerts:
            self.kinds.append(alert["kind"])
            if alert["kind"] == "block_confirmed":
                self.arrivals.setdefault(alert["target"]["id"], arrived)
        return web.Response(status=204)


async def run_trials(trials: int, interval: float, confirm_delay: float,
                     check_interval: int, seed: int) -> dict[str, Any]:
    from lab import Lab
    from monitor.commands.demo import serve_on_loopback, start_control_helper
    from monitor.service.compose import run_service
    from monitor.service.load import load_target_lists
    from monitor.service.plan import ServicePlan
    from monitor.service.runner import RunnerConfig
    from monitor.service.scheduler import ListSchedule
    from monitor.service.upkeep import attach_alerts as attach_to_service
    from monitor.settings import load_settings
    from monitor.signals import ShutdownRequest

    if trials > len(SITES):
        raise SystemExit(f"at most {len(SITES)} trials (one lab site each)")
    rng = random.Random(seed)
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    hook_url, hook_runner = await serve_on_loopback(app)
    work = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    results: list[dict[str, float]] = []
    first_anomaly: dict[str, float] = {}
    round_starts: list[float] = []
    async with Lab(work / "lab", extra_hosts=dict.fromkeys([*SITES, CONTROL], "none"),
                   catalogue=False, control=False) as lab:
        helper_url, helper_runner = await start_control_helper(lab.info)
        registry = work / "registry.toml"
        write_registry(registry)
        settings = load_settings(write_config(work, lab.info, helper_url, hook_url + "hook",
                                              registry, check_interval), environ={})
        shutdown = ShutdownRequest()

        def watch(runner: Any) -> None:
            def on_measurement(event: Any) -> None:
                if event.outcome.blocking and event.outcome.confirmation == 0:
                    first_anomaly.setdefault(event.target.id, time.monotonic())
            runner.on_measurement.append(on_measurement)

        def on_round(_result: Any) -> None:
            round_starts.append(time.monotonic())

        plan = ServicePlan(
            settings=settings, target_lists=load_target_lists(settings, ["bench"]),
            runner_config=RunnerConfig(confirm_retests=2, confirm_delay_seconds=confirm_delay,
                                       shutdown_grace_seconds=2.0),
            schedules={"bench": ListSchedule(interval_seconds=interval)},
            on_runner=[watch], on_round=[on_round],
            on_service=[attach_to_service(settings)])

        async def script() -> None:
            try:
                await asyncio.sleep(interval * 1.5)  # let the first round see every site open
                for host in SITES[:trials]:
                    target_id = host.split(".")[0]
                    await asyncio.sleep(rng.uniform(0, interval))
                    started = time.monotonic()
                    await lab.set_policy(host, "dns.nxdomain")
                    deadline = started + interval * 3 + confirm_delay * 4 + 30
                    while target_id not in receiver.arrivals and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                    if target_id in receiver.arrivals:
                        results.append({
                            "latency": receiver.arrivals[target_id] - started,
                            "until_first_anomaly": first_anomaly[target_id] - started,
                            "confirm_and_deliver": receiver.arrivals[target_id]
                            - first_anomaly[target_id]})
            finally:
                shutdown.trigger("benchmark done")

        scripted = asyncio.ensure_future(script())
        try:
            await run_service(plan, shutdown=shutdown)
        finally:
            await scripted
            await helper_runner.cleanup()
            await hook_runner.cleanup()
    round_gaps = [later - earlier for earlier, later in zip(round_starts, round_starts[1:], strict=False)]
    return {"results": results, "missed": trials - len(results), "kinds": receiver.kinds,
            "round_seconds": statistics.median(round_gaps) if round_gaps else None}


def project(summary: dict[str, Any], *, interval: float, confirm_delay: float,
            real_interval: float = 600.0, real_confirm_delay: float = 30.0,
            real_jitter: float = 60.0) -> dict[str, float]:
    """Worst case at the default settings (10-minute rounds, 60 s jitter, 2 re-tests 30 s
    apart): a block that starts just after its URL was measured waits a whole interval plus
    jitter; then the re-tests; the rest (measuring, deciding,
    sending) is what the benchmark measured beyond its own confirmation delays."""
    worst_post = max(result["confirm_and_deliver"] for result in summary["results"])
    work_beyond_delays = max(0.0, worst_post - 2 * confirm_delay)
    worst_wait = max(result["until_first_anomaly"] for result in summary["results"])
    # The wait for the next round is bounded by the interval plus one round's measuring time.
    measuring_slack = max(0.0, worst_wait - interval)
    # [schedule] jitter_seconds delays each round by up to that much, so two rounds may lie
    # interval + jitter apart.
    return {"worst_seconds": real_interval + real_jitter + measuring_slack
            + 2 * real_confirm_delay + work_beyond_delays,
            "work_beyond_delays": work_beyond_delays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--interval", type=float, default=6.0, help="round interval, seconds")
    parser.add_argument("--confirm-delay", type=float, default=1.0,
                        help="seconds between an anomaly and each re-test")
    parser.add_argument("--check-interval", type=int, default=15,
                        help="[alerts] check_interval_seconds (the transition hook wakes "
                             "the job sooner)")
    parser.add_argument("--seed", type=int, default=2015)
    arguments = parser.parse_args()
    summary = asyncio.run(run_trials(arguments.trials, arguments.interval,
                                     arguments.confirm_delay, arguments.check_interval,
                                     arguments.seed))
    latencies = sorted(result["latency"] for result in summary["results"])
    if not latencies:
        raise SystemExit(f"no alert arrived in {arguments.trials} trials: {summary}")
    projection = project(summary, interval=arguments.interval,
                         confirm_delay=arguments.confirm_delay)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "command": "python benchmarks/bench_alert_latency.py " + " ".join(sys.argv[1:]),
        "interval_s": arguments.interval, "confirm_delay_s": arguments.confirm_delay,
        "trials": arguments.trials, "missed": summary["missed"],
        "latency_worst_s": round(latencies[-1], 2),
        "latency_median_s": round(statistics.median(latencies), 2),
        "latency_best_s": round(latencies[0], 2),
        "until_first_anomaly_worst_s": round(max(
            r["until_first_anomaly"] for r in summary["results"]), 2),
        "confirm_and_deliver_worst_s": round(max(
            r["confirm_and_deliver"] for r in summary["results"]), 2),
        "projected_worst_at_10min_jitter60_confirm30_s": round(projection["worst_seconds"], 1),
        "aim_s": 600 + 120,
        "other_alert_kinds": sorted(set(summary["kinds"]) - {"block_confirmed"}),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
