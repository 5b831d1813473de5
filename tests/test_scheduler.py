"""The scheduler: list jobs fire, never overlap, coalesce missed runs, speed up in watch windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from monitor.service.scheduler import (
    ListSchedule,
    MonitorScheduler,
    WatchWindow,
    WatchWindowTrigger,
    build_normal_trigger,
    crontab_weekdays,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def hourly_with_window() -> WatchWindowTrigger:
    normal = IntervalTrigger(hours=1, start_date=T0, timezone=UTC)
    window = WatchWindow(
        start=T0 + timedelta(hours=5, minutes=30),
        end=T0 + timedelta(hours=6, minutes=10),
        interval_seconds=600,
        name="election",
    )
    return WatchWindowTrigger(normal, [window])


def test_outside_windows_the_normal_schedule_applies():
    trigger = hourly_with_window()
    assert trigger.get_next_fire_time(T0, T0) == T0 + timedelta(hours=1)


def test_window_opening_fires_at_once_then_every_window_interval():
    trigger = hourly_with_window()
    previous = T0 + timedelta(hours=5)
    opening = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
    assert opening == T0 + timedelta(hours=5, minutes=30)
    following = trigger.get_next_fire_time(opening, opening)
    assert following == opening + timedelta(minutes=10)


def test_after_the_window_the_normal_schedule_resumes_without_firing_inside_it():
    trigger = hourly_with_window()
    last_in_window = T0 + timedelta(hours=6, minutes=0)
    after = trigger.get_next_fire_time(last_in_window, last_in_window)
    # 6:10 would be the next window firing but the window ends at 6:10; the normal 7:00 is next.
    assert after == T0 + timedelta(hours=7)


def test_a_normal_firing_inside_a_window_is_replaced_by_the_window():
    normal = IntervalTrigger(hours=1, start_date=T0, timezone=UTC)
    window = WatchWindow(start=T0 + timedelta(minutes=50), end=T0 + timedelta(hours=3),
                         interval_seconds=1800)
    trigger = WatchWindowTrigger(normal, [window])
    assert trigger.get_next_fire_time(T0, T0) == T0 + timedelta(minutes=50)


def test_a_cron_schedule_gets_its_jitter_too():
    from monitor.service.scheduler import build_normal_trigger

    trigger = build_normal_trigger(
        ListSchedule(interval_seconds=None, cron="0 * * * *", jitter_seconds=30), start=T0)
    fire_times = {trigger.get_next_fire_time(None, T0 + timedelta(minutes=1))
                  for _ in range(20)}
    hour = T0 + timedelta(hours=1)
    assert all(hour <= moment <= hour + timedelta(seconds=30) for moment in fire_times)
    assert len(fire_times) > 1  # 20 uniform draws over 30 s are not all the same instant
    plain = build_normal_trigger(ListSchedule(interval_seconds=None, cron="0 * * * *"), start=T0)
    assert plain.get_next_fire_time(None, T0 + timedelta(minutes=1)) == hour


def test_bad_schedules_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="exactly one of"):
        ListSchedule(interval_seconds=60, cron="* * * * *")
    with pytest.raises(ValueError, match="end is not after start"):
        WatchWindow(start=T0, end=T0, interval_seconds=60)
    scheduler = MonitorScheduler()
    with pytest.raises(ValueError, match="cron 'every day'"):
        scheduler.add_list("x", _noop, ListSchedule(interval_seconds=None, cron="every day"))


async def _noop() -> None:
    return None


async def test_list_job_fires_repeatedly_on_a_short_interval():
    scheduler = MonitorScheduler()
    fired: list[datetime] = []

    async def run_round() -> None:
        fired.append(datetime.now(UTC))

    scheduler.add_list("briefing", run_round, ListSchedule(interval_seconds=0.1))
    scheduler.start()
    try:
        await wait_until(lambda: len(fired) >= 3)
    finally:
        scheduler.shutdown()
    assert fired == sorted(fired)


async def test_a_slow_round_is_never_overlapped_by_the_next():
    scheduler = MonitorScheduler()
    running = 0
    most_at_once = 0
    finished = 0

    async def slow_round() -> None:
        nonlocal running, most_at_once, finished
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.5)
        running -= 1
        finished += 1

    scheduler.add_list("briefing", slow_round, ListSchedule(interval_seconds=0.1))
    scheduler.start()
    try:
        await wait_until(lambda: finished >= 2)
    finally:
        scheduler.shutdown()
    assert most_at_once == 1
    assert scheduler.skipped_overlaps.get("list:briefing", 0) >= 1


async def test_missed_rounds_are_coalesced_into_one():
    scheduler = MonitorScheduler()
    fired = 0

    async def run_round() -> None:
        nonlocal fired
        fired += 1

    # Five rounds were due while the process was away; all within the misfire grace.
    five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5, seconds=-2)
    scheduler.add_list(
        "briefing", run_round,
        ListSchedule(interval_seconds=60, misfire_grace_seconds=600), now=five_minutes_ago,
    )
    scheduler.start()
    try:
        await wait_until(lambda: fired >= 1)
        await asyncio.sleep(0.3)
    finally:
        scheduler.shutdown()
    assert fired == 1


async def test_watch_window_switches_to_the_faster_interval():
    scheduler = MonitorScheduler()
    fired: list[datetime] = []

    async def run_round() -> None:
        fired.append(datetime.now(UTC))

    now = datetime.now(UTC)
    window = WatchWindow(start=now + timedelta(seconds=0.3), end=now + timedelta(minutes=5),
                         interval_seconds=0.1)
    # Without the window the next round would be an hour away.
    scheduler.add_list(
        "briefing", run_round,
        ListSchedule(interval_seconds=3600, watch_windows=(window,), run_immediately=False),
    )
    scheduler.start()
    try:
        await wait_until(lambda: len(fired) >= 3)
    finally:
        scheduler.shutdown()
    assert all(moment >= window.start for moment in fired)


async def test_confirmation_for_the_same_key_replaces_the_pending_one():
    scheduler = MonitorScheduler()
    ran: list[str] = []

    async def first() -> None:
        ran.append("first")

    async def second() -> None:
        ran.append("second")

    scheduler.start()
    try:
        soon = datetime.now(UTC) + timedelta(seconds=0.2)
        scheduler.add_confirmation("local|https://a.example/", first, at=soon)
        scheduler.add_confirmation("local|https://a.example/", second, at=soon)
        assert scheduler.pending_confirmations() == 1
        await wait_until(lambda: ran)
        await asyncio.sleep(0.2)
    finally:
        scheduler.shutdown()
    assert ran == ["second"]
    assert scheduler.pending_confirmations() == 0


async def test_periodic_job_fires_and_a_failing_one_does_not_stop_the_others():
    scheduler = MonitorScheduler()
    fired = 0

    async def report() -> None:
        nonlocal fired
        fired += 1

    async def broken() -> None:
        raise RuntimeError("uploader down")

    scheduler.add_periodic("reports", report, seconds=0.1)
    scheduler.add_periodic("upload", broken, seconds=0.1)
    scheduler.start()
    try:
        await wait_until(lambda: fired >= 2)
    finally:
        scheduler.shutdown()
    assert {job.id for job in scheduler.scheduler.get_jobs()} >= {"periodic:reports", "periodic:upload"}


@pytest.mark.parametrize(
    ("field", "names"),
    [("1", "mon"), ("1-5", "mon,tue,wed,thu,fri"), ("0", "sun"), ("7", "sun"),
     ("*/2", "sun,tue,thu,sat"), ("mon-fri", "mon,tue,wed,thu,fri"), ("1,3,5", "mon,wed,fri"),
     ("6-7", "sun,sat"), ("*", "*")],
)
def test_crontab_weekdays_count_from_sunday_as_crontab_does(field, names):
    assert crontab_weekdays(field) == names


def test_a_weekday_crontab_fires_on_the_days_it_names():
    schedule = ListSchedule(interval_seconds=None, cron="0 3 * * 1-5")
    trigger = build_normal_trigger(schedule, start=datetime(2026, 11, 20, tzinfo=UTC))
    moment = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # a Friday, after 03:00
    fired = []
    for _ in range(5):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        fired.append(moment.strftime("%a %H:%M"))
    assert fired == ["Mon 03:00", "Tue 03:00", "Wed 03:00", "Thu 03:00", "Fri 03:00"]


def test_a_bad_weekday_is_named():
    with pytest.raises(ValueError, match="day of week"):
        build_normal_trigger(ListSchedule(interval_seconds=None, cron="0 3 * * 9"), start=datetime(2026, 11, 20, tzinfo=UTC))
