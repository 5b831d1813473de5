"""Prometheus /metrics: a snapshot read from the store, rendered in the text exposition format."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from monitor.alerts.store_tables import AlertTables
from monitor.store import Store
from probes.vocabulary import TARGET_STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything /metrics shows, read in one go."""

    states: list[dict[str, Any]] = field(default_factory=list)        # vantage_id, url, state
    measurements: list[dict[str, Any]] = field(default_factory=list)  # vantage_id, method, n
    spool_backlog: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)    # channel, status, n, attempts
    alerts: list[dict[str, Any]] = field(default_factory=list)        # kind, n
    open_incidents: list[dict[str, Any]] = field(default_factory=list)  # kind, n
    rounds: list[dict[str, Any]] = field(default_factory=list)  # status, n


def read_snapshot(store: Store) -> MetricsSnapshot:
    """Runs on the store's thread. Counts come from the tables, so every process serving
    /metrics (monitor, collector replicas) reports the same figures."""
    tables = AlertTables(store)
    return MetricsSnapshot(
        states=tables.rows("SELECT vantage_id, url, state FROM target_state "
                           "ORDER BY vantage_id, url"),
        # Grouped on the bare columns so the covering index (vantage_id, blocking_method) of
        # migration 5 answers it: a scrape must not read a million JSON rows.
        measurements=[
            {"vantage_id": row["vantage_id"], "method": row["method"] or "", "n": row["n"]}
            for row in tables.rows(
                "SELECT vantage_id, blocking_method AS method, COUNT(*) AS n FROM measurements "
                "GROUP BY vantage_id, blocking_method ORDER BY vantage_id, blocking_method")
        ],
        spool_backlog=int(store.spool_backlog()),
        deliveries=tables.delivery_counts(),
        alerts=tables.rows("SELECT kind, COUNT(*) AS n FROM alerts GROUP BY kind ORDER BY kind"),
        open_incidents=tables.rows("SELECT kind, COUNT(*) AS n FROM incidents "
                                   "WHERE status = 'open' GROUP BY kind ORDER BY kind"),
        rounds=tables.rows("SELECT status, COUNT(*) AS n FROM runs GROUP BY status "
                           "ORDER BY status"),
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: Mapping[str, str], value: float | int) -> str:
    inner = ",".join(f'{key}="{_escape(str(text))}"' for key, text in labels.items())
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


def _family(name: str, kind: str, help_text: str, lines: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def render_metrics(snapshot: MetricsSnapshot) -> str:
    """The text exposition format (version 0.0.4), by hand: no client library needed."""
    out: list[str] = []
    out += _family(
        "blockmon_target_state", "gauge",
        "1 for the current state of each (vantage, url), 0 for the other states.",
        (_series("blockmon_target_state",
                 {"vantage": row["vantage_id"], "url": row["url"], "state": state},
                 int(row["state"] == state))
         for row in snapshot.states for state in TARGET_STATES))
    out += _family(
        "blockmon_measurements_total", "counter",
        "Stored measurements by vantage and blocking method (method=\"\" when none).",
        (_series("blockmon_measurements_total",
                 {"vantage": row["vantage_id"], "method": row["method"]}, int(row["n"]))
         for row in snapshot.measurements))
    out += _family("blockmon_spool_backlog", "gauge",
                   "Measurements waiting for upload to the collector.",
                   [_series("blockmon_spool_backlog", {}, snapshot.spool_backlog)])
    out += _family(
        "blockmon_alert_deliveries", "gauge",
        "Alert deliveries by channel and status (pending, sending, sent, failed).",
        (_series("blockmon_alert_deliveries", {"channel": row["channel"],
                                               "status": row["status"]}, int(row["n"]))
         for row in snapshot.deliveries))
    attempts: dict[str, int] = {}
    for row in snapshot.deliveries:
        attempts[row["channel"]] = attempts.get(row["channel"], 0) + int(row["attempts"] or 0)
    out += _family(
        "blockmon_alert_delivery_attempts_total", "counter",
        "Attempts to deliver alerts, successful or not, by channel.",
        (_series("blockmon_alert_delivery_attempts_total", {"channel": channel}, count)
         for channel, count in sorted(attempts.items())))
    out += _family("blockmon_alerts_total", "counter", "Alerts recorded, by kind.",
                   (_series("blockmon_alerts_total", {"kind": row["kind"]}, int(row["n"]))
                    for row in snapshot.alerts))
    out += _family("blockmon_incidents_open", "gauge", "Open incidents, by kind.",
                   (_series("blockmon_incidents_open", {"kind": row["kind"]}, int(row["n"]))
                    for row in snapshot.open_incidents))
    out += _family("blockmon_rounds_total", "counter",
                   "Rounds by status (ok, degraded, interrupted, running).",
                   (_series("blockmon_rounds_total", {"status": row["status"]}, int(row["n"]))
                    for row in snapshot.rounds))
    return "\n".join(out) + "\n"


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A small reader of the format above (for tests and `alerts` checks): (name, labels) ->
    value."""
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    escaped = re.compile(r"\\(.)", flags=re.DOTALL)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = pattern.match(line)
        if match is None:
            raise ValueError(f"not a metrics line: {line!r}")
        name, labels, value = match.groups()
        # One pass, left to right: an escaped backslash followed by "n" is not a line break.
        pairs = frozenset((key, escaped.sub(lambda found: "\n" if found[1] == "n" else found[1],
                                            raw))
                          for key, raw in label.findall(labels or ""))
        values[(name, pairs)] = float(value)
    return values


def add_metrics_route(app: web.Application,
                      fetch: Callable[[], Awaitable[MetricsSnapshot]]) -> None:
    """GET /metrics on an aiohttp application (collector, dashboard, or our own listener)."""
    async def metrics(_request: web.Request) -> web.Response:
        snapshot = await fetch()
        return web.Response(body=render_metrics(snapshot).encode("utf-8"),
                            headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", metrics)
