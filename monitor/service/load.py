"""Builds the ServicePlan of `blockmon run` from the settings file, checking what would fail later."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.service.assignment import (
    AssignmentError,
    load_saved_assignment,
    saved_assignment_path,
)
from monitor.service.plan import ServiceCannotStart, ServiceHook, ServicePlan, schedule_for
from monitor.service.runner import RunnerConfig
from monitor.service.upkeep import (
    attach_alerts,
    attach_check_in,
    attach_metrics,
    attach_retention,
    attach_uploads,
)
from monitor.settings import Settings, SettingsError, load_settings
from probes.asn import AsnDatabaseError, open_asn_database
from targets.model import TargetFileError, TargetList
from targets.registry import load_registry
from targets.storage import load_list

log = logging.getLogger("blockmon.run")

# Given the settings, the on_service hook of a job that sits above the service (the reports).
ServiceJob = Callable[[Settings], ServiceHook]


def load_plan(config_path: str | None, list_names: Sequence[str], *,
              report_job: ServiceJob | None = None) -> ServicePlan:
    """The settings, the lists to measure and the service's jobs; ServiceCannotStart, one line,
    for what would stop it. `report_job` is attached when [reports] weekly or monthly is on."""
    try:
        settings = load_settings(config_path)
    except SettingsError as error:
        raise ServiceCannotStart(str(error)) from None
    check_asn_database(settings)
    names = list(list_names) or list(settings.targets.lists)
    # With a collector, the lists it handed out last time (saved at check-in) come first.
    central = None if list_names else collector_lists(settings)
    target_lists = central[0] if central else load_target_lists(settings, names)
    if not any(target.urls for target_list in target_lists for target in target_list.targets):
        raise ServiceCannotStart(f"no targets to measure in list(s) {', '.join(names)}")
    check_watch_window_lists(settings, target_lists)
    plan = ServicePlan(settings=settings, target_lists=target_lists,
                       runner_config=RunnerConfig.from_settings(settings))
    if central and central[1] is not None:
        for target_list in target_lists:
            plan.schedules[target_list.name] = dataclasses.replace(
                schedule_for(settings, target_list.name), interval_seconds=central[1], cron=None)
    if settings.collector.url and settings.collector.token and not list_names:
        plan.on_start.append(attach_check_in(settings))
    if settings.alerts.enabled:
        plan.on_service.append(attach_alerts(settings))
        plan.on_start.append(attach_metrics(settings))
    if report_job is not None and (settings.reports.weekly or settings.reports.monthly):
        plan.on_service.append(report_job(settings))
    if settings.collector.url and settings.collector.token:
        plan.on_service.append(attach_uploads(settings))
    if settings.storage.retention_days > 0:
        plan.on_service.append(attach_retention(settings))
    return plan


def load_target_lists(settings: Settings, names: Sequence[str]) -> list[TargetList]:
    """The named lists: the registry's own list by its name, others from saved list files."""
    try:
        registry = load_registry(settings.targets.registry_path)
    except TargetFileError as error:  # already names the file and line
        raise ServiceCannotStart(str(error)) from None
    except OSError as error:
        raise ServiceCannotStart(f"targets registry {settings.targets.registry_path}: "
                                 f"{error.strerror}") from None
    lists: list[TargetList] = []
    for name in names:
        if name == registry.name:
            lists.append(registry)
            continue
        lists.append(_load_saved_list(settings, name))
    return lists


def _load_saved_list(settings: Settings, name: str) -> TargetList:
    try:
        loaded: TargetList = load_list(name, Path(settings.storage.data_dir) / "lists")
    except (TargetFileError, OSError) as error:
        raise ServiceCannotStart(f"list {name!r}: {error}") from None
    return loaded


def check_asn_database(settings: Settings) -> None:
    """Parses [probe] asn_database once (it stays cached for the measurements), so a bad file
    stops the start with its file:line instead of failing every measurement."""
    if not settings.probe.asn_database:
        return
    try:
        open_asn_database(settings.probe.asn_database)
    except AsnDatabaseError as error:
        raise ServiceCannotStart(f"[probe] asn_database: {error}") from None


def check_watch_window_lists(settings: Settings, target_lists: Sequence[TargetList]) -> None:
    """A watch window naming a list that is not measured is a typo that would silently leave
    the list on its normal schedule."""
    known = list(dict.fromkeys([*settings.targets.lists, *(t.name for t in target_lists)]))
    for number, window in enumerate(settings.schedule.watch_windows, start=1):
        unknown = [name for name in window.lists if name not in known]
        if unknown:
            raise ServiceCannotStart(
                f"[schedule] watch_windows[{number}] lists: {', '.join(map(repr, unknown))} "
                f"not among the lists measured ({', '.join(known)})")


def collector_lists(settings: Settings) -> tuple[list[TargetList], float | None] | None:
    """The lists and interval of the last check-in saved under the data dir, if any."""
    if not (settings.collector.url and settings.collector.token):
        return None
    try:
        assignment = load_saved_assignment(saved_assignment_path(settings.storage.data_dir))
        if assignment is None:
            return None
        return assignment.target_lists(), assignment.interval_seconds
    except AssignmentError as error:  # the configured lists then, until the next check-in
        log.error("%s; measuring [targets] lists until the collector sends a new version", error)
        return None
