"""`blockmon run`: the long-running measuring service, or one round with --once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

import click

from monitor.service.progress import ProgressReporter, render_round_summary, render_round_table
from monitor.service.runner import RoundResult, Runner, RunnerConfig, StoreRecorder
from monitor.service.scheduler import ListSchedule, MonitorScheduler, WatchWindow
from monitor.service.shutdown import ShutdownRequest
from targets.model import TargetList

log = logging.getLogger("blockmon.run")


class RoundCannotRun(click.ClickException):
    """The round could not start at all (settings, database, targets): exit 1, one line."""


# ---- what to measure, and when ------------------------------------------------------------

def load_target_lists(settings: Any, names: Sequence[str]) -> list[TargetList]:
    """The named lists: the registry's own list by its name, others from saved list files."""
    from targets.model import TargetFileError
    from targets.registry import load_registry

    try:
        registry = load_registry(settings.targets.registry_path)
    except TargetFileError as error:  # already names the file and line
        raise RoundCannotRun(str(error)) from None
    except OSError as error:
        raise RoundCannotRun(f"targets registry {settings.targets.registry_path}: "
                             f"{error.strerror}") from None
    lists: list[TargetList] = []
    for name in names:
        if name == registry.name:
            lists.append(registry)
            continue
        lists.append(_load_saved_list(settings, name))
    return lists


def _load_saved_list(settings: Any, name: str) -> TargetList:
    from pathlib import Path

    from targets.model import TargetFileError
    from targets.storage import load_list

    try:
        loaded: TargetList = load_list(name, Path(settings.storage.data_dir) / "lists")
    except (TargetFileError, OSError) as error:
        raise RoundCannotRun(f"list {name!r}: {error}") from None
    return loaded


def schedule_for(settings: Any, list_name: str) -> ListSchedule:
    """The [schedule] section as one list's schedule (windows with `lists` apply to those)."""
    schedule = settings.schedule
    windows = tuple(
        WatchWindow(start=window.start, end=window.end,
                    interval_seconds=window.interval_minutes * 60.0,
                    name=f"window {number}")
        for number, window in enumerate(schedule.watch_windows, start=1)
        if not window.lists or list_name in window.lists
    )
    return ListSchedule(
        interval_seconds=None if schedule.cron else schedule.interval_minutes * 60.0,
        cron=schedule.cron,
        jitter_seconds=float(schedule.jitter_seconds),
        watch_windows=windows,
    )


# ---- the service --------------------------------------------------------------------------

RoundHook = Callable[[RoundResult], Awaitable[None] | None]


@dataclass
class ServicePlan:
    """Everything one service run needs; the demo builds its own with shorter schedules."""

    settings: Any
    target_lists: list[TargetList]
    runner_config: RunnerConfig
    schedules: dict[str, ListSchedule] = field(default_factory=dict)
    measure: Callable[..., Awaitable[dict[str, Any]]] | None = None
    on_round: list[RoundHook] = field(default_factory=list)
    on_runner: list[Callable[[Runner], None]] = field(default_factory=list)
    # Service mode only: where later consumers plug in, e.g. alerts append to
    # runner.on_transition, uploads and reports call scheduler.add_periodic(...).
    on_service: list[Callable[[Runner, MonitorScheduler], None]] = field(default_factory=list)
    # Service mode only, awaited once before the first round (e.g. the first collector check-in).
    on_start: list[Callable[[RunningService], Awaitable[None]]] = field(default_factory=list)


@dataclass
class RunningService:
    """What an on_start hook gets: the live runner and scheduler, and a way to swap the lists."""

    plan: ServicePlan
    runner: Runner
    scheduler: MonitorScheduler
    round_job: Callable[[str], Callable[[], Awaitable[None]]]

    async def replace_lists(self, target_lists: list[TargetList],
                            interval_seconds: float | None) -> None:
        """Measure these lists from now on (a round already running finishes its old list);
        each is measured right away, then every `interval_seconds` (None: [schedule])."""
        recorder: Any = self.runner.store
        for target_list in target_lists:
            await recorder.call(recorder.store.save_targets, target_list.targets)
        names = {target_list.name for target_list in target_lists}
        for name in set(self.runner.lists) - names:
            self.scheduler.remove_list(name)
        self.runner.lists = {target_list.name: target_list for target_list in target_lists}
        for target_list in target_lists:
            schedule = schedule_for(self.plan.settings, target_list.name)
            if interval_seconds is not None:
                schedule = dataclasses.replace(schedule, interval_seconds=interval_seconds,
                                               cron=None)
            self.scheduler.add_list(target_list.name, self.round_job(target_list.name), schedule)


def open_store_or_explain(database_url: str, *, spool: bool = False) -> Any:
    from monitor.schema import PROBE_DATABASE
    from monitor.store import StoreError, open_store

    try:
        return open_store(database_url, spool=spool, migration_sets=PROBE_DATABASE)
    except (StoreError, OSError) as error:
        raise RoundCannotRun(f"database {database_url}: {error}") from None
    except Exception as error:  # sqlite3/psycopg errors have no common base we can name here
        if type(error).__module__.split(".")[0] in ("sqlite3", "psycopg"):
            raise RoundCannotRun(f"database {database_url}: {error}") from None
        raise


async def _with_store(plan: ServicePlan, body: Callable[[Runner], Awaitable[int]]) -> int:
    from monitor.store.writer import StoreWriter

    settings = plan.settings
    store = open_store_or_explain(settings.storage.database_url,
                                  spool=settings.collector.url is not None)
    writer = StoreWriter(store)
    probe_options = settings.probe.to_probe_options()
    session = None
    try:
        for target_list in plan.target_lists:
            await writer.call(store.save_targets, target_list.targets)
        recorder = StoreRecorder(store, writer.call,
                                 vantage_id=settings.probe.vantage_id)
        if probe_options.helper_url is not None:
            import aiohttp

            # One connection pool to the control helper for the whole service, not one per URL.
            session = aiohttp.ClientSession()
        runner = Runner(settings, recorder, plan.target_lists, probe_options,
                        config=plan.runner_config, measure=plan.measure, session=session)
        for prepare in plan.on_runner:
            prepare(runner)
        return await body(runner)
    finally:
        if session is not None:
            await session.close()
        await writer.close()


async def run_once(plan: ServicePlan, *, stderr: TextIO, stdout: TextIO,
                   shutdown: ShutdownRequest | None = None) -> list[RoundResult]:
    """One round over each list, then the confirmation re-tests it asked for."""
    results: list[RoundResult] = []

    async def body(runner: Runner) -> int:
        runner.keep_retest_outcomes = True
        stop = shutdown or ShutdownRequest()
        stop.install()
        watcher = asyncio.ensure_future(_stop_on_request(stop, runner))
        total = sum(len(target.urls) for tl in plan.target_lists for target in tl.targets)
        progress = ProgressReporter(stderr, total, min_interval_seconds=0.1)
        try:
            for target_list in plan.target_lists:
                if runner.stopping:
                    break
                results.append(await runner.run_round(target_list.name, progress=progress))
            retests = await runner.wait_for_confirmations()
            if results and retests:
                results[-1].outcomes.extend(retests)
        finally:
            progress.close()
            watcher.cancel()
            stop.remove()
            await runner.drain(0 if stop.forced else None)
        for result in results:
            if result.outcomes:
                stdout.write(render_round_table(result.outcomes) + "\n")
            stdout.write(render_round_summary(result.list_name, result.outcomes,
                                              result.status) + "\n")
        return 0

    await _with_store(plan, body)
    return results


async def _stop_on_request(stop: ShutdownRequest, runner: Runner) -> None:
    await stop.wait()
    await stop_gracefully(runner, stop)


async def stop_gracefully(runner: Runner, stop: ShutdownRequest) -> int:
    """No new work; in-flight measurements get the grace period (none after a second signal).
    Returns how many were cancelled."""
    runner.stop()
    drainer = asyncio.ensure_future(runner.drain())
    while not drainer.done():
        if stop.forced:
            await runner.drain(0)
        await asyncio.sleep(0.05)
    return drainer.result()


async def run_service(plan: ServicePlan, *, shutdown: ShutdownRequest,
                      scheduler: MonitorScheduler | None = None) -> int:
    """Rounds on each list's schedule until SIGTERM/SIGINT (or shutdown.trigger())."""
    clock = scheduler or MonitorScheduler()

    async def body(runner: Runner) -> int:
        runner.schedule_retest = lambda key, job, at: clock.add_confirmation(key, job, at=at)

        async def one_round(list_name: str) -> None:
            if runner.stopping:
                return
            result = await runner.run_round(list_name)
            log.info(render_round_summary(list_name, result.outcomes, result.status))
            for hook in plan.on_round:
                returned = hook(result)
                if asyncio.iscoroutine(returned):
                    await returned

        for target_list in plan.target_lists:
            schedule = plan.schedules.get(target_list.name) or schedule_for(
                plan.settings, target_list.name)
            clock.add_list(target_list.name, partial(one_round, target_list.name), schedule)
        for extend in plan.on_service:
            extend(runner, clock)
        stale = await runner.store.close_stale_runs()
        if stale:
            log.warning("%d runs left 'running' by an earlier process marked interrupted", stale)
        service = RunningService(plan, runner, clock,
                                 round_job=lambda name: partial(one_round, name))
        for start_hook in plan.on_start:
            await start_hook(service)
        shutdown.install()
        clock.start()
        try:
            await shutdown.wait()
        finally:
            clock.pause()
            cancelled = await stop_gracefully(runner, shutdown)
            # Rounds close their run rows once their measurements are done or cancelled;
            # periodic jobs (uploads, alerts) finish their store calls before the writer closes.
            unfinished = await clock.wait_for_running_jobs(timeout=10)
            if unfinished:
                log.warning("%d scheduled jobs still running at shutdown", unfinished)
            clock.shutdown()
            shutdown.remove()
            log.info("stopped (%d in-flight measurements cancelled)", cancelled)
        return 0

    return await _with_store(plan, body)


# ---- the command --------------------------------------------------------------------------

def load_plan(config_path: str | None, list_names: Sequence[str]) -> ServicePlan:
    from monitor.settings import SettingsError, load_settings

    try:
        settings = load_settings(config_path)
    except SettingsError as error:
        raise RoundCannotRun(str(error)) from None
    check_asn_database(settings)
    names = list(list_names) or list(settings.targets.lists)
    # With a collector, the lists it handed out last time (saved at check-in) come first.
    central = None if list_names else collector_lists(settings)
    target_lists = central[0] if central else load_target_lists(settings, names)
    if not any(target.urls for target_list in target_lists for target in target_list.targets):
        raise RoundCannotRun(f"no targets to measure in list(s) {', '.join(names)}")
    check_watch_window_lists(settings, target_lists)
    plan = ServicePlan(settings=settings, target_lists=target_lists,
                       runner_config=RunnerConfig.from_settings(settings))
    if central and central[1] is not None:
        for target_list in target_lists:
            plan.schedules[target_list.name] = dataclasses.replace(
                schedule_for(settings, target_list.name), interval_seconds=central[1], cron=None)
    if settings.collector.url and settings.collector.token and not list_names:
        plan.on_start.append(attach_check_in(settings))
    if settings.alerts.enabled:
        from monitor.alerts.service import attach_to_service

        plan.on_service.append(attach_to_service(settings))
    if settings.reports.weekly or settings.reports.monthly:
        from reports.periodic import attach_reports_to_service

        plan.on_service.append(attach_reports_to_service(settings))
    if settings.collector.url and settings.collector.token:
        plan.on_service.append(attach_uploads(settings))
    if settings.storage.retention_days > 0:
        plan.on_service.append(attach_retention(settings))
    return plan


def check_asn_database(settings: Any) -> None:
    """Parses [probe] asn_database once (it stays cached for the measurements), so a bad file
    stops the start with its file:line instead of failing every measurement."""
    if not settings.probe.asn_database:
        return
    from probes.asn import AsnDatabaseError, open_asn_database

    try:
        open_asn_database(settings.probe.asn_database)
    except AsnDatabaseError as error:
        raise RoundCannotRun(f"[probe] asn_database: {error}") from None


def check_watch_window_lists(settings: Any, target_lists: Sequence[TargetList]) -> None:
    """A watch window naming a list that is not measured is a typo that would silently leave
    the list on its normal schedule."""
    known = list(dict.fromkeys([*settings.targets.lists, *(t.name for t in target_lists)]))
    for number, window in enumerate(settings.schedule.watch_windows, start=1):
        unknown = [name for name in window.lists if name not in known]
        if unknown:
            raise RoundCannotRun(
                f"[schedule] watch_windows[{number}] lists: {', '.join(map(repr, unknown))} "
                f"not among the lists measured ({', '.join(known)})")


def collector_lists(settings: Any) -> tuple[list[TargetList], float | None] | None:
    """The lists and interval of the last check-in saved under the data dir, if any."""
    if not (settings.collector.url and settings.collector.token):
        return None
    from monitor.service.assignment import (
        AssignmentError,
        load_saved_assignment,
        saved_assignment_path,
    )

    try:
        assignment = load_saved_assignment(saved_assignment_path(settings.storage.data_dir))
        if assignment is None:
            return None
        return assignment.target_lists(), assignment.interval_seconds
    except AssignmentError as error:  # the configured lists then, until the next check-in
        log.error("%s; measuring [targets] lists until the collector sends a new version", error)
        return None


def attach_check_in(settings: Any, *, interval_seconds: float | None = None,
                    fetch: Any = None) -> Callable[[RunningService], Awaitable[None]]:
    """For ServicePlan.on_start: check in with the collector before the first round and then
    every `interval_seconds` (default: [collector] check_in_interval_seconds); a new target list version is saved under
    `<data_dir>/collector/` and measured from the next round on."""
    from monitor.service.assignment import (
        CheckInKeeper,
        http_check_in,
        saved_assignment_path,
    )

    keeper = CheckInKeeper(saved_assignment_path(settings.storage.data_dir),
                           fetch or http_check_in(settings))

    async def start(service: RunningService) -> None:
        async def check_in() -> None:
            await keeper.check_in_once(service.replace_lists)

        await check_in()
        service.scheduler.add_periodic("check-in", check_in,
                                       seconds=interval_seconds or settings.collector.check_in_interval_seconds)

    return start


# Ten minutes in: after the first rounds have started, before a day has passed.
RETENTION_FIRST_RUN_SECONDS = 600.0


def attach_retention(settings: Any) -> Callable[[Runner, MonitorScheduler], None]:
    """For ServicePlan.on_service: prune measurements past [storage] retention_days daily."""

    def attach(runner: Runner, scheduler: MonitorScheduler) -> None:
        from monitor.service.retention import prune_job

        recorder: Any = runner.store
        # The first prune soon after start: a service restarted more often than daily (upgrades,
        # reboots) would otherwise never reach its first daily run.
        scheduler.add_periodic(
            "retention", prune_job(recorder.call, recorder.store,
                                   settings.storage.retention_days),
            seconds=24 * 3600.0, first_run_seconds=RETENTION_FIRST_RUN_SECONDS)

    return attach


def attach_uploads(settings: Any) -> Callable[[Runner, MonitorScheduler], None]:
    """For ServicePlan.on_service: drain the spool to the collector every
    [collector] upload_interval_seconds, through the store's writer thread."""

    def attach(runner: Runner, scheduler: MonitorScheduler) -> None:
        async def upload() -> None:
            import aiohttp

            from monitor.service.uploader import upload_pending

            async with aiohttp.ClientSession() as session:
                result = await upload_pending(runner.store, settings, session)
            if result.error:
                log.warning("upload to %s: %s (%d waiting)", settings.collector.url,
                            result.error, result.backlog)

        scheduler.add_periodic("upload", upload,
                               seconds=float(settings.collector.upload_interval_seconds))

    return attach


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
    plan = load_plan((ctx.obj or {}).get("config_path"), list_names)
    if once:
        asyncio.run(run_once(plan, stderr=sys.stderr, stdout=sys.stdout))
    else:
        asyncio.run(run_service(plan, shutdown=ShutdownRequest()))
