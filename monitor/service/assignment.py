"""Probe side: the target lists and schedule a collector hands out at check-in, saved and applied."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from monitor.service.collector_client import CheckIn, CollectorRefused, check_in
from monitor.settings import Settings
from targets.model import TargetFileError, TargetList
from targets.registry import parse_registry_text

log = logging.getLogger(__name__)

# A check-in at start must not hold the first round back for long when the collector is away.
CHECK_IN_TIMEOUT_SECONDS = 15.0


class AssignmentError(ValueError):
    """A saved or received assignment cannot be used; the message names the file or version."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """One published version: a target registry (TOML text) and how often to measure it."""

    version: int
    published_at: str
    format: str
    content: str
    schedule: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str) -> Assignment:
        """From a check-in's `targets` object or the saved file; AssignmentError naming `where`."""
        if not isinstance(data, dict):
            raise AssignmentError(f"{where}: must be a JSON object")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise AssignmentError(f"{where}: version must be an integer")
        for key in ("published_at", "format", "content"):
            if not isinstance(data.get(key), str):
                raise AssignmentError(f"{where}: {key} must be a string")
        if data["format"] != "toml":
            raise AssignmentError(f"{where}: format {data['format']!r} is not 'toml'")
        schedule = data.get("schedule") or {}
        if not isinstance(schedule, dict):
            raise AssignmentError(f"{where}: schedule must be an object")
        minutes = schedule.get("interval_minutes")
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                    or minutes <= 0):
            raise AssignmentError(f"{where}: schedule.interval_minutes must be a positive integer")
        return cls(version, data["published_at"], data["format"], data["content"], dict(schedule))

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "published_at": self.published_at,
                "format": self.format, "content": self.content, "schedule": self.schedule}

    @property
    def interval_seconds(self) -> float | None:
        minutes = self.schedule.get("interval_minutes")
        return None if minutes is None else float(minutes) * 60.0

    def target_lists(self) -> list[TargetList]:
        """The lists to measure (pure); AssignmentError when the registry text is bad or names
        no list the schedule asks for."""
        where = f"collector target list version {self.version}"
        try:
            registry = parse_registry_text(self.content, where)
        except TargetFileError as error:
            raise AssignmentError(str(error)) from None
        wanted = [str(name) for name in self.schedule.get("lists") or []]
        if wanted and registry.name not in wanted:
            raise AssignmentError(f"{where}: its list {registry.name!r} is not among the "
                                  f"scheduled lists {', '.join(wanted)}")
        if not any(target.urls for target in registry.targets):
            raise AssignmentError(f"{where}: no URL to measure")
        return [registry]


def saved_assignment_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "collector" / "assignment.json"


def save_assignment(path: Path, assignment: Assignment) -> None:
    """Write-then-rename in the same directory: a crash leaves the old file or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".assignment-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(assignment.as_json(), stream, ensure_ascii=False, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_saved_assignment(path: Path) -> Assignment | None:
    """The last version saved here, or None before the first; AssignmentError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise AssignmentError(f"{path}: cannot read: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AssignmentError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    return Assignment.from_json(data, str(path))


# Given the lists and the interval of a new version, makes the service measure them from the
# next round on (monitor.service.plan.RunningService.replace_lists).
ApplyLists = Callable[[list[TargetList], float | None], Awaitable[None]]
FetchCheckIn = Callable[[int | None], Awaitable[Any]]


class CheckInKeeper:
    """Checks in, keeps the newest assignment on disk, and hands new versions to the service.

    When the collector cannot be reached the last saved version stays in use.
    """

    def __init__(self, path: Path, fetch: FetchCheckIn) -> None:
        self.path = path
        self.fetch = fetch
        try:
            self.current = load_saved_assignment(path)
        except AssignmentError as error:
            log.error("%s; waiting for the collector's version", error)
            self.current = None

    async def check_in_once(self, apply: ApplyLists) -> str | None:
        """One check-in; returns why it did not get through (a failure string), else None."""
        known = self.current.version if self.current else None
        try:
            answer = await self.fetch(known)
        except CollectorRefused as error:
            log.warning("check-in refused: %s", error)
            return f"refused: {error}"
        except TimeoutError:
            return "generic_timeout_error"
        except (aiohttp.ClientError, OSError) as error:
            log.warning("check-in: collector unreachable (%s); keeping target list version %s",
                        type(error).__name__, known)
            return "connection_failed"
        if answer.targets is None:
            return None
        try:
            assignment = Assignment.from_json(answer.targets, "check-in answer")
            lists = assignment.target_lists()
        except AssignmentError as error:
            log.error("collector sent an unusable target list, keeping version %s: %s",
                      known, error)
            return f"unusable: {error}"
        save_assignment(self.path, assignment)
        self.current = assignment
        log.info("target list version %d from the collector (%d targets)", assignment.version,
                 sum(len(target_list.targets) for target_list in lists))
        await apply(lists, assignment.interval_seconds)
        return None


def http_check_in(settings: Settings) -> FetchCheckIn:
    """The real check-in over HTTP with [collector] url and token."""

    url, token = settings.collector.url, settings.collector.token
    if url is None or token is None:
        raise ValueError("http_check_in needs [collector] url and token")

    async def fetch(known_version: int | None) -> CheckIn:
        async with aiohttp.ClientSession() as session:
            return await check_in(session, url, token, known_version,
                                  timeout=CHECK_IN_TIMEOUT_SECONDS)

    return fetch
