"""The run service's upkeep: stale runs closed at start, retention pruning, one helper session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.service.compose import run_service
from monitor.service.plan import ServicePlan
from monitor.service.retention import prune_job
from monitor.service.runner import RunnerConfig
from monitor.service.scheduler import ListSchedule, MonitorScheduler
from monitor.service.upkeep import attach_retention
from monitor.settings import load_settings
from monitor.signals import ShutdownRequest
from monitor.store import Store, open_store
from monitor.store.writer import StoreWriter
from tests.fixtures.runner import ScriptedProbe, make_target_list
from tests.fixtures.store import synthetic_measurement


def write_config(tmp_path: Path, text: str = "") -> Path:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n{text}')
    return config


def test_close_stale_runs_touches_only_this_vantage(store: Store) -> None:
    stale = store.start_run("briefing", "kz-almaty-1")
    other = store.start_run("briefing", "kz-astana-1")
    done = store.start_run("briefing", "kz-almaty-1")
    store.finish_run(done, "ok", {"measured": 1})
    assert store.close_stale_runs("kz-almaty-1") == 1
    runs = {run["id"]: run for run in store.load_runs()}
    assert runs[stale]["status"] == "interrupted" and runs[stale]["finished_at"]
    assert runs[other]["status"] == "running" and runs[other]["finished_at"] is None
    assert runs[done]["status"] == "ok"
    assert store.close_stale_runs("kz-almaty-1") == 0


async def _serve_one_round(plan: ServicePlan) -> None:
    shutdown = ShutdownRequest()
    plan.on_round.append(lambda result: shutdown.trigger("test"))
    assert await asyncio.wait_for(run_service(plan, shutdown=shutdown), timeout=60) == 0


async def test_service_start_marks_a_killed_run_interrupted(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path), environ={})
    store = open_store(settings.storage.database_url)
    killed = store.start_run("news", settings.probe.vantage_id)  # as kill -9 leaves it
    store.close()
    plan = ServicePlan(settings=settings, target_lists=[make_target_list("news", {"a.example": 1})],
                       runner_config=RunnerConfig(), measure=ScriptedProbe(),
                       schedules={"news": ListSchedule(interval_seconds=3600)})
    await _serve_one_round(plan)
    store = open_store(settings.storage.database_url)
    try:
        runs = {run["id"]: run for run in store.load_runs()}
    finally:
        store.close()
    assert runs[killed]["status"] == "interrupted" and runs[killed]["finished_at"] is not None
    assert [run["status"] for run_id, run in runs.items() if run_id != killed] == ["ok"]


async def test_retention_job_prunes_past_the_cutoff(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    old = synthetic_measurement(measured_at="2026-01-01 00:00:00")
    recent = synthetic_measurement(measured_at="2026-11-20 00:00:00")
    store.save_measurements([old, recent])
    writer = StoreWriter(store)
    job = prune_job(writer.call, store, 30, clock=lambda: datetime(2026, 11, 25, tzinfo=UTC))
    try:
        assert await job() == 1
        assert await job() == 0
        assert await writer.call(store.load_measurement, old["measurement_uid"]) is None
        assert await writer.call(store.load_measurement, recent["measurement_uid"]) is not None
    finally:
        await writer.close()


def test_retention_is_scheduled_daily_only_when_set(tmp_path: Path) -> None:
    from monitor.service.load import load_plan

    plain = load_plan(str(write_config(tmp_path)), [])
    assert not any(getattr(hook, "__qualname__", "").startswith("attach_retention")
                   for hook in plain.on_service)
    settings = load_settings(write_config(tmp_path, "retention_days = 30\n"), environ={})
    kept = load_plan(str(write_config(tmp_path, "retention_days = 30\n")), [])
    assert any(hook.__qualname__.startswith("attach_retention") for hook in kept.on_service)

    class FakeRecorder:
        store = object()

        async def call(self, *args: Any) -> int:
            return 0

    class FakeRunner:
        store = FakeRecorder()

    scheduler = MonitorScheduler()
    attach_retention(settings)(FakeRunner(), scheduler)  # type: ignore[arg-type]
    [job] = scheduler.scheduler.get_jobs()
    assert job.id == "periodic:retention"
    assert job.trigger.interval.total_seconds() == 24 * 3600
    # The first prune comes minutes after start, not a day later (a service restarted daily
    # would never prune).
    first = job.trigger.start_date - datetime.now(UTC)
    assert timedelta(minutes=5) <= first <= timedelta(minutes=15)


async def test_rounds_share_one_helper_session_closed_at_shutdown(tmp_path: Path) -> None:
    settings = load_settings(write_config(
        tmp_path, '[probe]\nhelper_url = "http://127.0.0.1:9/"\n'), environ={})
    scripted = ScriptedProbe()
    sessions: list[Any] = []

    async def measure(url: str, options: Any, **kwargs: Any) -> dict[str, Any]:
        sessions.append(kwargs.get("session"))
        return await scripted(url, options, **kwargs)

    plan = ServicePlan(settings=settings,
                       target_lists=[make_target_list("news", {"a.example": 2, "b.example": 2})],
                       runner_config=RunnerConfig(), measure=measure,
                       schedules={"news": ListSchedule(interval_seconds=3600)})
    await _serve_one_round(plan)
    assert len(sessions) == 4
    assert sessions[0] is not None and all(session is sessions[0] for session in sessions)
    assert sessions[0].closed
