"""`blockmon run` applies the collector's check-in: new target list versions, saved, measured next."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.service.assignment import (
    Assignment,
    AssignmentError,
    CheckInKeeper,
    http_check_in,
    load_saved_assignment,
    save_assignment,
    saved_assignment_path,
)
from monitor.service.compose import run_service
from monitor.service.load import load_plan
from monitor.service.runner import RoundResult
from monitor.service.upkeep import attach_check_in
from monitor.signals import ShutdownRequest
from tests.fixtures.collector import CollectorProcess, register_probe, run_blockmon
from tests.fixtures.runner import ScriptedProbe


def registry_text(list_name: str, *hosts: str) -> str:
    targets = "".join(
        f'[[target]]\nid = "{host.split(".")[0]}"\nname = "{host}"\ncategory_code = "NEWS"\n'
        f'[[target.url]]\nurl = "https://{host}/"\nrole = "home"\n' for host in hosts)
    return f'[list]\nname = "{list_name}"\n\n{targets}'


def assignment(version: int, content: str, minutes: int = 30) -> Assignment:
    return Assignment(version, "2026-11-25T18:00:00Z", "toml", content,
                      {"interval_minutes": minutes, "lists": []})


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(database=f"sqlite:///{tmp_path / 'collector.db'}", workdir=tmp_path)
    process.start()
    yield process
    process.stop()


def publish(collector: CollectorProcess, tmp_path: Path, name: str, content: str) -> None:
    registry = tmp_path / name
    registry.write_text(content)
    result = run_blockmon("collector", "publish-targets", str(registry), "--interval-minutes", "30",
                          "--database", collector.database, cwd=collector.workdir)
    assert result.returncode == 0, result.stderr


def write_config(tmp_path: Path, collector_url: str, token: str) -> Path:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[probe]\nvantage_id = "kz-central"\ncc = "KZ"\nasn = "AS9198"\n'
                      f'[collector]\nurl = "{collector_url}"\ntoken = "{token}"\n')
    return config


async def test_a_newly_published_list_is_measured_in_the_next_round(
    collector: CollectorProcess, tmp_path: Path
) -> None:
    token = register_probe(collector, "kz-central")
    publish(collector, tmp_path, "v1.toml", registry_text("central", "one.example"))
    config = write_config(tmp_path, collector.url, token)
    plan = load_plan(str(config), [])
    settings = plan.settings
    plan.measure = ScriptedProbe()
    plan.on_service = []  # no uploads or reports: only the check-in is under test
    plan.on_start = [attach_check_in(settings, interval_seconds=1)]
    shutdown = ShutdownRequest()
    measured: list[tuple[str, list[str]]] = []
    publishing: list[asyncio.Future[Any]] = []

    def after_round(result: RoundResult) -> None:
        urls = sorted(outcome.url for outcome in result.outcomes)
        measured.append((result.list_name, urls))
        if urls == ["https://one.example/"] and not publishing:
            publishing.append(asyncio.ensure_future(asyncio.to_thread(
                publish, collector, tmp_path, "v2.toml",
                registry_text("central", "two.example", "three.example"))))
        if "https://two.example/" in urls:
            shutdown.trigger("test")

    plan.on_round.append(after_round)
    assert await asyncio.wait_for(run_service(plan, shutdown=shutdown), timeout=60) == 0

    # The shipped briefing list was never measured: the check-in at start replaced it.
    assert measured[0] == ("central", ["https://one.example/"])
    assert measured[-1] == ("central", ["https://three.example/", "https://two.example/"])
    saved = load_saved_assignment(saved_assignment_path(settings.storage.data_dir))
    assert saved is not None and saved.version == 2 and "two.example" in saved.content
    # A restart measures the saved version, every 30 minutes as published, before any check-in.
    restarted = load_plan(str(config), [])
    assert [target.id for target in restarted.target_lists[0].targets] == ["two", "three"]
    assert restarted.schedules["central"].interval_seconds == 1800.0

    # With the collector gone, the saved version stays in use and is not touched.
    collector.stop()
    keeper = CheckInKeeper(saved_assignment_path(settings.storage.data_dir),
                           http_check_in(settings))
    applied: list[Any] = []

    async def apply(lists: Any, interval: Any) -> None:
        applied.append(lists)

    assert await keeper.check_in_once(apply) == "connection_failed"
    assert applied == [] and keeper.current is not None and keeper.current.version == 2


async def test_an_unusable_version_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = saved_assignment_path(tmp_path)
    save_assignment(path, assignment(3, registry_text("central", "one.example")))

    class Answer:
        targets = assignment(4, "[[target").as_json()

    async def fetch(known: int | None) -> Any:
        assert known == 3
        return Answer()

    keeper = CheckInKeeper(path, fetch)
    applied: list[Any] = []

    async def apply(lists: Any, interval: Any) -> None:
        applied.append(lists)

    failure = await keeper.check_in_once(apply)
    assert failure is not None and failure.startswith("unusable: collector target list version 4")
    assert applied == [] and keeper.current is not None and keeper.current.version == 3
    assert json.loads(path.read_text())["version"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["assignment.json"]  # no temp file left


def test_bad_assignments_are_named(tmp_path: Path) -> None:
    path = saved_assignment_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(AssignmentError, match=r"assignment\.json: not valid JSON"):
        load_saved_assignment(path)
    with pytest.raises(AssignmentError, match="schedule.interval_minutes"):
        Assignment.from_json({**assignment(1, "").as_json(), "schedule": {"interval_minutes": 0}},
                             "check-in answer")
    only_other = Assignment(1, "t", "toml", registry_text("central", "one.example"),
                            {"lists": ["briefing"]})
    with pytest.raises(AssignmentError, match="not among the scheduled lists briefing"):
        only_other.target_lists()
    # A broken saved file does not stop the service: the [targets] lists are used meanwhile.
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path}"\n'
                      '[collector]\nurl = "http://127.0.0.1:9/"\ntoken = "t"\n')
    plan = load_plan(str(config), [])
    assert [target_list.name for target_list in plan.target_lists] == ["briefing"]
