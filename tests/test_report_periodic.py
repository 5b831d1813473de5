"""The running monitor's weekly and monthly report jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.settings import load_settings
from reports.periodic import (
    MONTHLY_CRON,
    WEEKLY_CRON,
    attach_reports_to_service,
    write_archived_report,
)
from reports.periods import parse_period
from tests.fixtures.reports import HistoryStore


class RecordingScheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, tuple[Any, str | None]] = {}

    def add_periodic(self, name: str, job: Any, *, seconds: float | None = None,
                     cron: str | None = None, jitter_seconds: float = 0.0) -> None:
        self.jobs[name] = (job, cron)


def settings_for(history_store: HistoryStore, out_dir: Path, **reports: str) -> Any:
    environ = {"BLOCKMON_STORAGE_DATABASE": history_store.url,
               "BLOCKMON_REPORTS_OUT_DIR": str(out_dir)}
    environ.update({f"BLOCKMON_REPORTS_{key.upper()}": value for key, value in reports.items()})
    return load_settings(None, environ=environ)


def test_jobs_follow_the_settings(history_store: HistoryStore, tmp_path: Path) -> None:
    scheduler = RecordingScheduler()
    attach_reports_to_service(settings_for(history_store, tmp_path))(None, scheduler)
    assert {name: cron for name, (_, cron) in scheduler.jobs.items()} == {
        "report-weekly": WEEKLY_CRON, "report-monthly": MONTHLY_CRON}
    only_monthly = RecordingScheduler()
    attach_reports_to_service(settings_for(history_store, tmp_path, weekly="false"))(
        None, only_monthly)
    assert list(only_monthly.jobs) == ["report-monthly"]


async def test_the_job_writes_into_the_archive(history_store: HistoryStore,
                                               tmp_path: Path) -> None:
    scheduler = RecordingScheduler()
    attach_reports_to_service(settings_for(history_store, tmp_path))(None, scheduler)
    job, _ = scheduler.jobs["report-weekly"]
    await job()
    (written,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert "-W" in written.name and (written / "report.html").is_file()


def test_archived_report_uses_registry_and_store_targets(history_store: HistoryStore,
                                                         tmp_path: Path) -> None:
    settings = settings_for(history_store, tmp_path)
    directory = write_archived_report(settings, parse_period("2026-11"))
    document = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    claims = {claim["target_id"]: claim["verdict"] for claim in document["claims"]}
    assert claims["blockednews"] == "still blocked"  # from the store's targets table
    assert claims["azattyq"] == "not measurable"  # from the shipped registry, not measured


def test_the_jobs_fire_when_the_docs_say() -> None:
    # APScheduler 3 numbers crontab weekdays from Monday = 0, so "* * 1" would be Tuesday.
    from datetime import UTC, datetime

    from apscheduler.triggers.cron import CronTrigger

    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    weekly = CronTrigger.from_crontab(WEEKLY_CRON, timezone=UTC).get_next_fire_time(None, sunday)
    assert weekly == datetime(2026, 11, 30, 0, 20, tzinfo=UTC) and weekly.weekday() == 0
    monthly = CronTrigger.from_crontab(MONTHLY_CRON, timezone=UTC).get_next_fire_time(None,
                                                                                      sunday)
    assert monthly == datetime(2026, 12, 1, 0, 40, tzinfo=UTC)
