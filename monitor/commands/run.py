"""`blockmon run`: the long-running measuring service, or one round with --once."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from monitor.service.compose import run_once, run_service
from monitor.service.load import load_plan
from monitor.service.plan import ServiceCannotStart
from monitor.signals import ShutdownRequest
from reports.periodic import attach_reports_to_service

# `run --once` exit status when a round ran but its measurements cannot be judged (degraded).
ROUND_DEGRADED_EXIT = 3


class RoundCannotRun(click.ClickException):
    """The round could not start at all (settings, database, targets): exit 1, one line."""


@contextmanager
def cannot_start_is_one_line() -> Iterator[None]:
    """The service's ServiceCannotStart as click's `Error: ...` line and exit status 1."""
    try:
        yield
    except ServiceCannotStart as error:
        raise RoundCannotRun(str(error)) from None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler's INFO lines repeat ours ("Running job ...") for every round.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))


@click.command()
@click.option("--once", is_flag=True,
              help="Measure each list once (with confirmation re-tests), print a table, exit.")
@click.option("--list", "list_names", multiple=True, metavar="NAME",
              help="Measure this list instead of [targets] lists; repeatable.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Log detail on stderr (default: warning with --once, else info).")
@click.pass_context
def run(ctx: click.Context, once: bool, list_names: tuple[str, ...],
        log_level: str | None) -> None:
    """Measure the configured target lists on their schedule until stopped (SIGTERM/SIGINT)."""
    configure_logging(log_level or ("warning" if once else "info"))
    with cannot_start_is_one_line():
        plan = load_plan((ctx.obj or {}).get("config_path"), list_names,
                         report_job=attach_reports_to_service)
        if once:
            results = asyncio.run(run_once(plan, stderr=sys.stderr, stdout=sys.stdout))
            if any(result.degraded for result in results):
                ctx.exit(ROUND_DEGRADED_EXIT)
        else:
            asyncio.run(run_service(plan, shutdown=ShutdownRequest()))
