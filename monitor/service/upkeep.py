"""The service's jobs beside the rounds: collector check-in and uploads, retention, alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from monitor.alerts.metrics import MetricsSnapshot, read_snapshot
from monitor.alerts.service import AlertService, serve_metrics
from monitor.service.assignment import (
    CheckInKeeper,
    FetchCheckIn,
    http_check_in,
    saved_assignment_path,
)
from monitor.service.plan import RunningService, ServiceCannotStart, ServiceHook, StartHook
from monitor.service.retention import prune_job
from monitor.service.runner import Runner
from monitor.service.scheduler import MonitorScheduler
from monitor.service.uploader import upload_pending
from monitor.settings import Settings
from monitor.store import Store

log = logging.getLogger("blockmon.run")

# Ten minutes in: after the first rounds have started, before a day has passed.
RETENTION_FIRST_RUN_SECONDS = 600.0


def attach_check_in(settings: Settings, *, interval_seconds: float | None = None,
                    fetch: FetchCheckIn | None = None) -> StartHook:
    """For ServicePlan.on_start: check in with the collector before the first round and then
    every `interval_seconds` (default: [collector] check_in_interval_seconds); a new target
    list version is saved under `<data_dir>/collector/` and measured from the next round on."""
    keeper = CheckInKeeper(saved_assignment_path(settings.storage.data_dir),
                           fetch or http_check_in(settings))

    async def start(service: RunningService) -> None:
        async def check_in() -> None:
            await keeper.check_in_once(service.replace_lists)

        await check_in()
        service.scheduler.add_periodic(
            "check-in", check_in,
            seconds=interval_seconds or settings.collector.check_in_interval_seconds)

    return start


def attach_retention(settings: Settings) -> ServiceHook:
    """For ServicePlan.on_service: prune measurements past [storage] retention_days daily."""

    def attach(runner: Runner, scheduler: MonitorScheduler) -> None:
        recorder = runner.store
        # The first prune soon after start: a service restarted more often than daily (upgrades,
        # reboots) would otherwise never reach its first daily run.
        scheduler.add_periodic(
            "retention", prune_job(recorder.call, recorder.store,
                                   settings.storage.retention_days),
            seconds=24 * 3600.0, first_run_seconds=RETENTION_FIRST_RUN_SECONDS)

    return attach


def attach_uploads(settings: Settings) -> ServiceHook:
    """For ServicePlan.on_service: drain the spool to the collector every
    [collector] upload_interval_seconds, through the store's writer thread."""

    def attach(runner: Runner, scheduler: MonitorScheduler) -> None:
        async def upload() -> None:
            async with aiohttp.ClientSession() as session:
                result = await upload_pending(runner.store, settings, session)
            if result.error:
                log.warning("upload to %s: %s (%d waiting)", settings.collector.url,
                            result.error, result.backlog)

        scheduler.add_periodic("upload", upload,
                               seconds=float(settings.collector.upload_interval_seconds))

    return attach


def attach_alerts(settings: Settings) -> ServiceHook:
    """For ServicePlan.on_service: the alert job on the monitor's scheduler, woken by the
    runner's transitions, plus /metrics when [alerts] metrics_listen is set."""

    def extend(runner: Runner, scheduler: MonitorScheduler) -> None:
        recorder = runner.store

        async def in_store(work: Callable[[Store], Any]) -> Any:
            return await recorder.call(work, recorder.store)

        service = AlertService.from_settings(settings, in_store)
        runner.on_transition.append(service.wake)
        scheduler.add_periodic("alerts", service.run_pass,
                               seconds=settings.alerts.check_interval_seconds)

    return extend


def attach_metrics(settings: Settings) -> StartHook:
    """For ServicePlan.on_start: /metrics on [alerts] metrics_listen. A port that cannot be
    bound stops the start with one line (a service silently without metrics looks healthy)."""

    async def start(service: RunningService) -> None:
        listen = settings.alerts.metrics_listen
        if not listen:
            return
        recorder = service.runner.store

        async def fetch() -> MetricsSnapshot:
            snapshot: MetricsSnapshot = await recorder.call(read_snapshot, recorder.store)
            return snapshot

        try:
            await serve_metrics(listen, fetch)
        except OSError as error:
            raise ServiceCannotStart(f"[alerts] metrics_listen {listen}: cannot listen: "
                                     f"{error.strerror or error}") from None

    return start
