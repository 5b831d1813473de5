"""What one `blockmon run` service measures and when (ServicePlan), and the hooks that extend it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.service.runner import MeasureFunction, RoundResult, Runner, RunnerConfig
from monitor.service.scheduler import ListSchedule, MonitorScheduler, WatchWindow
from monitor.settings import Settings
from targets.model import TargetList


class ServiceCannotStart(Exception):
    """The service or round could not start at all (settings, database, targets); one line."""


RoundHook = Callable[[RoundResult], Awaitable[None] | None]
# Given the live runner and scheduler: appends to runner.on_transition, adds periodic jobs.
ServiceHook = Callable[[Runner, MonitorScheduler], None]
StartHook = Callable[["RunningService"], Awaitable[None]]


def schedule_for(settings: Settings, list_name: str) -> ListSchedule:
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


@dataclass
class ServicePlan:
    """Everything one service run needs; the demo builds its own with shorter schedules."""

    settings: Settings
    target_lists: list[TargetList]
    runner_config: RunnerConfig
    schedules: dict[str, ListSchedule] = field(default_factory=dict)
    measure: MeasureFunction | None = None
    on_round: list[RoundHook] = field(default_factory=list)
    on_runner: list[Callable[[Runner], None]] = field(default_factory=list)
    # Service mode only: where later consumers plug in, e.g. alerts append to
    # runner.on_transition, uploads and reports call scheduler.add_periodic(...).
    on_service: list[ServiceHook] = field(default_factory=list)
    # Service mode only, awaited once before the first round (e.g. the first collector check-in).
    on_start: list[StartHook] = field(default_factory=list)


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
        recorder = self.runner.store
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
