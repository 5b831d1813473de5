"""`blockmon demo`: the monitor on the briefing's targets against the offline lab, in a minute."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import click
from aiohttp import web

from lab import Lab, LabInfo
from monitor.commands.run import RoundCannotRun, cannot_start_is_one_line, configure_logging
from monitor.service.compose import run_service
from monitor.service.plan import ServicePlan
from monitor.service.runner import RoundResult, Runner, RunnerConfig
from monitor.service.scheduler import ListSchedule
from monitor.settings import ScheduleSettings, load_settings
from monitor.signals import ShutdownRequest
from monitor.store import open_store
from probes.helper import HelperSettings, build_app
from targets import load_registry
from targets.model import TargetList

DEMO_VANTAGE = "demo-kz-lab"

# What the lab's censor starts doing after the first round: one scenario per blocking method the
# briefing and kz-context.md describe (SNI filtering of RFE/RL, the moved Fergana outlet gone
# from DNS, an ISP blockpage, interception of a social network's TLS).
DEMO_BLOCKS: dict[str, str] = {
    # The Kazakh site as it was blocked in 2023-24 (SNI timeout), the Russian one as it has been
    # since 2022: throttled by SNI (its traffic shaped by the lab's tc, lab/shaping.py).
    "www.azattyq.org": "tls.timeout",
    "rus.azattyq.org": "throttle",
    "www.fergananews.com": "dns.nxdomain",
    "fergana.agency": "dns.nxdomain",
    "fergana.news": "dns.nxdomain",
    "fergana.media": "dns.nxdomain",
    "www.eurasianet.org": "http.blockpage",
    "www.facebook.com": "tls.mitm",
}
# Only with nftables in the lab (IP blocking); left out, and said so, without it.
DEMO_FIREWALL_BLOCKS: dict[str, str] = {"vk.com": "tcp.reset"}


@dataclass(frozen=True, slots=True)
class DemoTiming:
    rounds: int = 3
    round_seconds: float = 15.0
    confirm_delay_seconds: float = 4.0
    confirm_retests: int = ScheduleSettings().confirm_retests


# The lab serves a large page at /large on every site: azattyq's rate is measured there (the
# shipped registry names no throughput_url for it, none being established).
DEMO_THROUGHPUT_URLS: dict[str, str] = {"azattyq": "https://rus.azattyq.org/large"}


def with_lab_throughput_urls(registry: TargetList) -> TargetList:
    targets = tuple(
        dataclasses.replace(target, throughput_url=DEMO_THROUGHPUT_URLS[target.id])
        if target.id in DEMO_THROUGHPUT_URLS else target for target in registry.targets)
    return dataclasses.replace(registry, targets=targets)


def hostnames_of(urls: Iterable[str]) -> list[str]:
    return sorted({urlsplit(url).hostname or "" for url in urls} - {""})


def write_demo_config(data_dir: Path, lab_info: LabInfo, helper_url: str) -> Path:
    """The settings the demo measures with; `blockmon status` and `history` read them after."""
    config = data_dir / "blockmon.toml"
    config.write_text(
        "# Written by `blockmon demo`: a probe in the lab's censored network.\n"
        "[probe]\n"
        f'vantage_id = "{DEMO_VANTAGE}"\ncc = "KZ"\nasn = "AS9198"\n'
        'network_name = "JSC Kazakhtelecom (lab)"\n'
        f'resolvers = ["{lab_info.censored_resolver}"]\n'
        f'source_address = "{lab_info.censored_source}"\n'
        f'ca_file = "{lab_info.ca_file}"\n'
        f'lab_public_ranges = ["{lab_info.public_range}"]\n'
        f'helper_url = "{helper_url}"\n'
        # Short timeouts: the lab answers in milliseconds or never.
        "dns_timeout = 2.0\nconnect_timeout = 3.0\ntls_timeout = 3.0\nhttp_timeout = 5.0\n"
        "control_timeout = 10.0\n"
        "[storage]\n"
        f'data_dir = "{data_dir}"\n'
        "[targets]\n"
        'lists = ["briefing"]\n'
        # `blockmon report` writes here and `blockmon serve` shows what is here.
        "[reports]\n"
        f'out_dir = "{data_dir / "reports"}"\n',
        encoding="utf-8",
    )
    return config


class DemoScript:
    """Turns blocks on after the first round and stops the service after the last."""

    def __init__(self, lab: Lab, timing: DemoTiming, shutdown: ShutdownRequest,
                 out: TextIO, blocks: dict[str, str]) -> None:
        self.lab = lab
        self.timing = timing
        self.shutdown = shutdown
        self.out = out
        self.blocks = blocks
        self.rounds_done = 0
        self.runner: Runner | None = None
        self._finisher: asyncio.Task[None] | None = None

    def attach(self, runner: Runner) -> None:
        self.runner = runner

    async def after_round(self, result: RoundResult) -> None:
        self.rounds_done += 1
        anomalies = sum(1 for outcome in result.outcomes if outcome.anomalous)
        # Rounds after the last asked for only run while its re-tests finish: say so.
        label = (f"{self.rounds_done}/{self.timing.rounds}" if self.rounds_done <=
                 self.timing.rounds else f"{self.rounds_done} (while the re-tests finish)")
        self.say(f"round {label}: {len(result.outcomes)} URLs measured, {anomalies} anomalous")
        if self.rounds_done == 1:
            for hostname, policy in self.blocks.items():
                await self.lab.set_policy(hostname, policy)
            self.say("the lab's censor now blocks: " + ", ".join(
                f"{hostname} ({policy})" for hostname, policy in self.blocks.items()))
        if self.rounds_done >= self.timing.rounds and self._finisher is None:
            self._finisher = asyncio.ensure_future(self._finish())

    async def _finish(self) -> None:
        # Let the last round's confirmation re-tests run, then stop like a SIGTERM would.
        deadline = asyncio.get_running_loop().time() + 4 * self.timing.round_seconds
        while self.runner is not None and self.runner.has_pending_retests:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        self.shutdown.trigger("demo finished")

    def say(self, text: str) -> None:
        self.out.write(f"demo: {text}\n")
        self.out.flush()


async def start_control_helper(lab_info: LabInfo) -> tuple[str, web.AppRunner]:
    """The control helper in-process, on the uncensored side: the lab's honest resolver."""
    app = build_app(HelperSettings(resolvers=(lab_info.honest_resolver,),
                                   ca_file=lab_info.ca_file,
                                   public_ranges=(lab_info.public_range,)))
    return await serve_on_loopback(app)


async def serve_on_loopback(app: web.Application) -> tuple[str, web.AppRunner]:
    """Serves an aiohttp app on a free 127.0.0.1 port; returns its URL and the AppRunner."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return f"http://127.0.0.1:{port}/", runner


async def run_demo(data_dir: Path, timing: DemoTiming, out: TextIO) -> ShutdownRequest:
    data_dir.mkdir(parents=True, exist_ok=True)
    # Each demo starts from an empty database: the lab's addresses differ from run to run.
    for old in data_dir.glob("blockmon.db*"):
        old.unlink()
    registry = with_lab_throughput_urls(load_registry())
    hostnames = hostnames_of(url for target in registry.targets for url in target.url_list())
    out.write(f"demo: starting the lab with the briefing's {len(hostnames)} hostnames "
              "(all reachable at first)\n")
    shutdown = ShutdownRequest()
    async with Lab(data_dir / "lab", extra_hosts=dict.fromkeys(hostnames, "none"),
                   catalogue=False, control=False) as lab:
        info = lab.info
        blocks = dict(DEMO_BLOCKS)
        for hostname, policy in DEMO_BLOCKS.items():
            if policy in info.unavailable_policies:  # throttling without tc: the SNI timeout
                out.write(f"demo: {hostname} gets tls.timeout instead of {policy}: "
                          f"{info.unavailable_policies[policy]}\n")
                blocks[hostname] = "tls.timeout"
        for hostname, policy in DEMO_FIREWALL_BLOCKS.items():
            if policy in info.unavailable_policies:
                out.write(f"demo: leaving out {hostname} ({policy}): "
                          f"{info.unavailable_policies[policy]}\n")
            else:
                blocks[hostname] = policy
        helper_url, helper_runner = await start_control_helper(info)
        try:
            config = write_demo_config(data_dir, info, helper_url)
            settings = load_settings(config, environ={})
            script = DemoScript(lab, timing, shutdown, out, blocks)
            plan = ServicePlan(
                settings=settings,
                target_lists=[registry],
                runner_config=dataclasses.replace(
                    RunnerConfig.from_settings(settings, shutdown_grace_seconds=5.0),
                    confirm_retests=timing.confirm_retests,
                    confirm_delay_seconds=timing.confirm_delay_seconds),
                schedules={registry.name: ListSchedule(interval_seconds=timing.round_seconds)},
                on_round=[script.after_round],
                on_runner=[script.attach],
            )
            out.write(f"demo: measuring {sum(len(t.urls) for t in registry.targets)} URLs every "
                      f"{timing.round_seconds:g} s for {timing.rounds} rounds; anomalies are "
                      f"re-tested {timing.confirm_retests} times, "
                      f"{timing.confirm_delay_seconds:g} s apart\n")
            await run_service(plan, shutdown=shutdown)
        finally:
            await helper_runner.cleanup()
    return shutdown


def render_next_steps(data_dir: Path, states: list[dict[str, Any]], *, month: str) -> str:
    """What the demo prints last; `month` (YYYY-MM) is the period its measurements fall in, since
    `blockmon report` alone reports the last complete month."""
    config = data_dir / "blockmon.toml"
    blocked = sorted({f"{row['target_id']} ({row['method']})" for row in states
                      if row["state"] == "blocked"})
    blocked_urls = sum(1 for row in states if row["state"] == "blocked")
    # Targets counted once however many methods their URLs show (azattyq: throttled and timeout).
    blocked_targets = {row["target_id"] for row in states if row["state"] == "blocked"}
    accessible = sum(1 for row in states if row["state"] == "accessible")
    lines = [
        "",
        f"demo: done. {blocked_urls} URLs confirmed blocked, in {len(blocked_targets)} targets: "
        f"{', '.join(blocked) or 'none'}; {accessible} URLs accessible.",
        f"demo: the database is {data_dir / 'blockmon.db'}. Next, try:",
        f"  blockmon --config {config} status",
        f"  blockmon --config {config} history azattyq",
        f"  BLOCKMON_CONFIG={config} blockmon status --state blocked",
        f"  blockmon --config {config} report --period {month}    # into {data_dir / 'reports'}",
        f"  blockmon --config {config} show UID     # one measurement, readable (uids in history)",
        f"  blockmon --config {config} serve    # dashboard on http://127.0.0.1:8080/",
    ]
    return "\n".join(lines) + "\n"


def load_final_states(data_dir: Path) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{data_dir / 'blockmon.db'}")
    try:
        return store.load_states(vantage_id=DEMO_VANTAGE)
    finally:
        store.close()


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-data"), show_default=True,
              help="Where the demo's database, settings and lab certificates go.")
@click.option("--rounds", type=click.IntRange(2, 20), default=3, show_default=True,
              help="Rounds to measure (blocks start after the first).")
@click.option("--round-seconds", type=click.FloatRange(1, 600), default=15.0, show_default=True,
              help="Seconds between the starts of two rounds.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, help="Log detail on stderr.")
def demo(data_dir: Path, rounds: int, round_seconds: float, log_level: str) -> None:
    """Run the monitor on the briefing's targets against the offline lab (needs root)."""
    if os.geteuid() != 0:
        raise RoundCannotRun(
            "blockmon demo needs root: the lab binds ports 53, 80 and 443 on 127.0.0.0/8 and "
            "uses nftables (run `sudo make demo`)")
    configure_logging(log_level)
    data_dir = data_dir.resolve()
    timing = DemoTiming(rounds=rounds, round_seconds=round_seconds)
    with cannot_start_is_one_line():
        asyncio.run(run_demo(data_dir, timing, sys.stdout))
    month = datetime.now(UTC).strftime("%Y-%m")
    sys.stdout.write(render_next_steps(data_dir, load_final_states(data_dir), month=month))
