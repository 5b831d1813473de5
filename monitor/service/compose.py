"""Runs a ServicePlan: store and writer, runner, scheduler and hooks; one round or until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TextIO

from monitor.schema import PROBE_DATABASE
from monitor.service.clock_watch import ClockWatch
from monitor.service.plan import RunningService, ServiceCannotStart, ServicePlan, schedule_for
from monitor.service.progress import ProgressReporter, render_round_summary, render_round_table
from monitor.service.runner import RoundResult, Runner, StoreRecorder
from monitor.service.scheduler import MonitorScheduler
from monitor.signals import ShutdownRequest
from monitor.store import Store, StoreError, open_store
from monitor.store.writer import StoreWriter
from probes.control_client import ControlClient

log = logging.getLogger("blockmon.run")


def open_store_or_explain(database_url: str, *, spool: bool = False) -> Store:
    try:
        return open_store(database_url, spool=spool, migration_sets=PROBE_DATABASE)
    except (StoreError, OSError) as error:
        raise ServiceCannotStart(f"database {database_url}: {error}") from None
    except Exception as error:  # sqlite3/psycopg errors have no common base we can name here
        if type(error).__module__.split(".")[0] in ("sqlite3", "psycopg"):
            raise ServiceCannotStart(f"database {database_url}: {error}") from None
        raise


async def _with_store(plan: ServicePlan, body: Callable[[Runner], Awaitable[int]]) -> int:
    settings = plan.settings
    store = open_store_or_explain(settings.storage.database_url,
                                  spool=settings.collector.url is not None)
    writer = StoreWriter(store)
    probe_options = settings.probe.to_probe_options()
    session, clock_watch = None, ClockWatch()
    try:
        for target_list in plan.target_lists:
            await writer.call(store.save_targets, target_list.targets)
        recorder = StoreRecorder(store, writer.call,
                                 vantage_id=settings.probe.vantage_id)
        if probe_options.helper_url is not None:
            # One connection pool to the control helper for the whole service, not one per URL.
            # It hands each answer's Date header to the clock watch: a round checks the clock.
            session = ControlClient(on_answer=clock_watch.observe_headers)
        runner = Runner(settings, recorder, plan.target_lists, probe_options,
                        config=plan.runner_config, measure=plan.measure, session=session,
                        clock_watch=clock_watch)
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
            if result.degraded:
                # One line on stderr; `blockmon run --once` then exits ROUND_DEGRADED_EXIT.
                stderr.write(f"round over {result.list_name} degraded: {result.reason}\n")
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
