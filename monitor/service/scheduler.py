"""When rounds run: one APScheduler job per target list, watch windows, confirmations, periodic jobs."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

AsyncJob = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WatchWindow:
    """A date range (e.g. around an election) during which a list is measured more often."""

    start: datetime
    end: datetime
    interval_seconds: float
    name: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"watch window {self.name or self.start}: start and end need a timezone")
        if self.end <= self.start:
            raise ValueError(f"watch window {self.name or self.start}: end is not after start")
        if self.interval_seconds <= 0:
            raise ValueError(f"watch window {self.name or self.start}: interval_seconds must be > 0")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class ListSchedule:
    """How often one target list is measured: an interval or a cron expression, plus windows."""

    interval_seconds: float | None = 3600.0
    cron: str | None = None
    jitter_seconds: float = 0.0
    # A round that could not start on time (process asleep, loop busy) may still start this late.
    misfire_grace_seconds: float = 300.0
    watch_windows: tuple[WatchWindow, ...] = field(default_factory=tuple)
    # Fire the first round right away instead of one interval after start.
    run_immediately: bool = True

    def __post_init__(self) -> None:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("a list schedule needs exactly one of interval_seconds or cron")
        if self.interval_seconds is not None and self.interval_seconds <= 0:
            raise ValueError("interval_seconds must be > 0")


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday, names allowed) as APScheduler day names.

    APScheduler 3 counts 0 as Monday, so handing it a crontab's numbers as they are would run
    '1-5' (Monday to Friday) from Tuesday to Saturday.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _weekday_number(first_text), _weekday_number(last_text)
        else:
            first = _weekday_number(base)
            last = 6 if step_text else first
        if step < 1 or first > last and last != 0:
            raise ValueError(f"day of week {part!r} is not a crontab range")
        if last < first:  # "5-0": Friday to Sunday
            last += 7
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAY_NAMES[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7
    raise ValueError(f"day of week {text!r} is not 0-7 or a day name")


def build_normal_trigger(schedule: ListSchedule, *, start: datetime) -> BaseTrigger:
    """The list's everyday trigger; raises ValueError naming a bad cron expression."""
    jitter = int(schedule.jitter_seconds) or None
    if schedule.cron is not None:
        try:
            fields = schedule.cron.split()
            if len(fields) != 5:
                raise ValueError("needs 5 fields: minute hour day month day-of-week")
            minute, hour, day, month, weekdays = fields
            cron = CronTrigger(minute=minute, hour=hour, day=day, month=month,
                               day_of_week=crontab_weekdays(weekdays), timezone=UTC)
        except ValueError as error:
            raise ValueError(f"cron {schedule.cron!r}: {error}") from None
        # Jitter, so probes sharing a crontab do not measure in lockstep.
        cron.jitter = jitter
        return cron
    assert schedule.interval_seconds is not None
    return IntervalTrigger(
        seconds=schedule.interval_seconds, start_date=start, timezone=UTC, jitter=jitter
    )


class WatchWindowTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires as the normal trigger does, except inside a watch window, where it fires every
    window interval (the first time as the window opens)."""

    def __init__(
        self, normal: BaseTrigger, windows: Sequence[WatchWindow], *, jitter_seconds: float = 0.0
    ) -> None:
        self.normal = normal
        self.windows = tuple(sorted(windows, key=lambda window: window.start))
        self.jitter_seconds = jitter_seconds

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        candidates: list[datetime] = []
        for window in self.windows:
            if window.end <= now:
                continue
            if previous_fire_time is not None and window.contains(previous_fire_time):
                moment = previous_fire_time + timedelta(seconds=window.interval_seconds)
            else:
                moment = max(window.start, now)
            if self.jitter_seconds:
                moment += timedelta(seconds=random.uniform(0, self.jitter_seconds))
            if moment < window.end:
                candidates.append(moment)
        normal_time = self._normal_time_outside_windows(previous_fire_time, now)
        if normal_time is not None:
            candidates.append(normal_time)
        return min(candidates) if candidates else None

    def _normal_time_outside_windows(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        moment: datetime | None = self.normal.get_next_fire_time(previous_fire_time, now)
        # A normal firing that lands inside a window is replaced by the window's own firings;
        # look again from the window's end. Bounded: each step moves past one window.
        for _ in range(len(self.windows) + 1):
            window = next((w for w in self.windows if moment and w.contains(moment)), None)
            if window is None or moment is None:
                return moment
            moment = self.normal.get_next_fire_time(None, window.end)
        return moment

    def __str__(self) -> str:
        return f"watch[{self.normal}, {len(self.windows)} windows]"


class MonitorScheduler:
    """The service's clock: rounds per list, confirmation re-tests and other periodic jobs."""

    def __init__(self, *, scheduler: AsyncIOScheduler | None = None) -> None:
        self.scheduler = scheduler or AsyncIOScheduler(timezone=UTC)
        self.skipped_overlaps: dict[str, int] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)

    def _tracked(self, job: AsyncJob) -> AsyncJob:
        """The job, remembered while it runs, so a shutdown can wait for it to finish."""

        async def run_tracked() -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                return await job()
            finally:
                if task is not None:
                    self._running.discard(task)

        return run_tracked

    def add_list(
        self,
        list_name: str,
        run_round: AsyncJob,
        schedule: ListSchedule,
        *,
        now: datetime | None = None,
    ) -> None:
        """One job per list; max_instances=1 so a slow round is never overlapped by the next."""
        now = now or datetime.now(UTC)
        start = now if schedule.run_immediately else now + timedelta(
            seconds=schedule.interval_seconds or 0
        )
        trigger: BaseTrigger = build_normal_trigger(schedule, start=start)
        if schedule.watch_windows:
            trigger = WatchWindowTrigger(
                trigger, schedule.watch_windows, jitter_seconds=schedule.jitter_seconds
            )
        self.scheduler.add_job(
            self._tracked(run_round),
            trigger=trigger,
            id=f"list:{list_name}",
            name=f"round over list {list_name}",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(schedule.misfire_grace_seconds)),
            replace_existing=True,
            # next_run_time=None would mean "paused" to APScheduler, so pass it only when set.
            **({"next_run_time": now} if schedule.run_immediately else {}),
        )

    def remove_list(self, list_name: str) -> bool:
        """Stops measuring a list (a collector's new version dropped it); False if unknown."""
        job = self.scheduler.get_job(f"list:{list_name}")
        if job is None:
            return False
        job.remove()
        return True

    def add_confirmation(self, key: str, retest: AsyncJob, *, at: datetime) -> None:
        """A one-off re-test; a newer request for the same key replaces the pending one."""
        self.scheduler.add_job(
            self._tracked(retest),
            trigger=DateTrigger(run_date=at, timezone=UTC),
            id=f"confirm:{key}",
            name=f"confirmation re-test {key}",
            # Confirmations are worth running late rather than never.
            misfire_grace_time=3600,
            coalesce=True,
            # A re-test asks for the next one before its own job has returned; with a short
            # delay the next may fire while this one is still finishing, and must not be skipped.
            max_instances=2,
            replace_existing=True,
        )

    def add_periodic(
        self,
        name: str,
        job: AsyncJob,
        *,
        seconds: float | None = None,
        cron: str | None = None,
        jitter_seconds: float = 0.0,
        first_run_seconds: float | None = None,
    ) -> None:
        """For later consumers (reports, uploads): a named job every `seconds` or on `cron`;
        the first run `first_run_seconds` after now when given, else one interval after now."""
        schedule = ListSchedule(
            interval_seconds=seconds, cron=cron, jitter_seconds=jitter_seconds, run_immediately=False
        )
        now = datetime.now(UTC)
        first = seconds if first_run_seconds is None else first_run_seconds
        trigger = build_normal_trigger(
            schedule, start=now + timedelta(seconds=first or 0)
        )
        self.scheduler.add_job(
            self._tracked(job),
            trigger=trigger,
            id=f"periodic:{name}",
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=300,
            replace_existing=True,
        )

    def pending_confirmations(self) -> int:
        return sum(1 for job in self.scheduler.get_jobs() if job.id.startswith("confirm:"))

    def start(self, *, paused: bool = False) -> None:
        self.scheduler.start(paused=paused)

    def pause(self) -> None:
        """Stop starting new jobs; jobs already running carry on."""
        if self.scheduler.running:
            self.scheduler.pause()

    async def wait_for_running_jobs(self, timeout: float) -> int:
        """After pause(): wait up to `timeout` for jobs still running; returns how many remain."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)
        return len(self._running)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _on_job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped_overlaps[event.job_id] = self.skipped_overlaps.get(event.job_id, 0) + 1
            log.warning("%s: previous run still going, this one skipped", event.job_id)
        else:
            log.error("%s failed: %r", event.job_id, getattr(event, "exception", None))
