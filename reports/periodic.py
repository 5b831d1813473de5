"""Weekly and monthly reports written by the running monitor into the [reports] archive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from monitor.service.scheduler import MonitorScheduler
from monitor.settings import Settings
from monitor.store import open_store
from monitor.store.queries import ReadDatabase, load_targets
from reports.collect import merge_targets
from reports.periods import Period, previous_month, previous_week
from reports.write import DEFAULT_FORMATS, generate_report
from targets import load_registry

log = logging.getLogger(__name__)

# Shortly after the period ends (UTC), leaving late confirmations and uploads a few minutes.
# The weekday by name: APScheduler 3 counts crontab weekdays from Monday = 0 ("1" = Tuesday).
WEEKLY_CRON = "20 0 * * mon"
MONTHLY_CRON = "40 0 1 * *"


def write_archived_report(settings: Settings, period: Period) -> Path:
    """Opens the configured store, writes the period's report into [reports] out_dir, and
    one per list of [reports] lists (a list not stored yet is logged and skipped)."""
    store = open_store(settings.storage.database_url, migrate=False)
    try:
        registry = list(load_registry(settings.targets.registry_path).targets)
        targets = merge_targets(registry, load_targets(ReadDatabase(store)))
        written = generate_report(store, period, settings.reports.out_dir, DEFAULT_FORMATS,
                                  targets=targets)
        for list_name in settings.reports.lists:
            try:
                generate_report(store, period, settings.reports.out_dir, DEFAULT_FORMATS,
                                targets=targets, lists=(list_name,))
            except ValueError as error:
                log.warning("report %s of list %s not written: %s", period.label, list_name,
                            error)
    finally:
        store.close()
    return written.directory


def attach_reports_to_service(settings: Settings
                              ) -> Callable[[object, MonitorScheduler], None]:
    """An on_service hook for `blockmon run`: adds the weekly and/or monthly report jobs."""

    def make_job(choose: Callable[[datetime], Period]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            period = choose(datetime.now(UTC))
            try:
                # A month of aggregation runs off the event loop, on its own connection.
                directory = await asyncio.to_thread(write_archived_report, settings, period)
            except Exception:
                log.exception("report %s could not be written", period.label)
                return
            log.info("report %s written to %s", period.label, directory)

        return job

    def attach(_runner: object, scheduler: MonitorScheduler) -> None:
        if settings.reports.weekly:
            scheduler.add_periodic("report-weekly", make_job(previous_week), cron=WEEKLY_CRON)
        if settings.reports.monthly:
            scheduler.add_periodic("report-monthly", make_job(previous_month),
                                   cron=MONTHLY_CRON)

    return attach
