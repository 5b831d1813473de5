"""The dashboard's aiohttp routes: server-rendered pages and the JSON API they are built on."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from monitor.settings import Settings
from monitor.store import Store
from monitor.store.current_states import (
    StateFilters,
    count_current_states,
    load_current_states,
    load_filter_choices,
    load_memberships,
    load_target_urls,
)
from monitor.store.queries import (
    ReadDatabase,
    is_uid,
    load_daily_counts,
    load_recent_measurements,
    load_target_row,
    load_targets,
)
from reports.build import DayCell, Timeline, day_cells
from reports.charts import OUTCOME_COLOURS, render_overview_svg, render_timeline_svg
from reports.collect import merge_targets
from reports.dashboard.access import DashboardDatabase, require_operator
from reports.dashboard.evidence import compare_observations
from reports.dashboard.measurement import build_measurement_view
from reports.formatting import when
from reports.periods import Period, PeriodError, parse_period, previous_month
from reports.summary import count_blocked_per_day
from reports.write import DEFAULT_FORMATS, FORMATS, generate_report, list_archive
from targets.model import Target

_HERE = Path(__file__).parent
# Days of history the target page's timelines show, ending at the target's last measurement.
TIMELINE_DAYS = 30
_FILTER_KEYS = ("list", "category", "asn", "state", "method")
# target_state rows per page of /api/v1/states and the overview: a collector's vantages x URLs
# can run to hundreds of thousands, which one request must not load.
STATES_PAGE = 500
STATES_PAGE_MAX = 5000
# Stored measurements (each up to megabytes) read for one target page's "latest evidence":
# blocked and anomalous places first, then the most recently measured.
LATEST_EVIDENCE = 12

@dataclass(frozen=True)
class DashboardConfig:
    database: DashboardDatabase
    settings: Settings
    prefix: str
    registry: tuple[Target, ...]
    templates: jinja2.Environment
    store_factory: Callable[[], Any]


CONFIG_KEY = web.AppKey("blockmon_dashboard", DashboardConfig)


def _config(request: web.Request) -> DashboardConfig:
    return request.config_dict[CONFIG_KEY]


def _filters(request: web.Request) -> StateFilters:
    query = request.query
    return StateFilters(list_name=query.get("list") or None,
                        category=query.get("category") or None, asn=query.get("asn") or None,
                        state=query.get("state") or None, method=query.get("method") or None)


def _page_bounds(request: web.Request) -> tuple[int, int]:
    """(limit, offset) from the query string; ValueError naming the parameter."""
    def number(name: str, default: int, low: int, high: int) -> int:
        text = request.query.get(name, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{name} {text!r}: not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{name} {value}: must be {low} to {high}")
        return value

    return (number("limit", STATES_PAGE, 1, STATES_PAGE_MAX),
            number("offset", 0, 0, 2**31 - 1))


_EVIDENCE_LINK = re.compile(r'href="evidence/([A-Za-z0-9_.:-]{1,128})\.json"')


def _page(request: web.Request, template: str, **context: Any) -> web.Response:
    config = _config(request)
    html = config.templates.get_template(template).render(
        prefix=config.prefix, when=when, colours=OUTCOME_COLOURS, **context)
    return _page_response(html)


# Everything the pages need is served here; nothing may be fetched from elsewhere.
_PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'")
# A report is one file with its own inline style and SVG, and no script.
_REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _page_response(html: str, policy: str = _PAGE_POLICY) -> web.Response:
    return web.Response(text=html, content_type="text/html", headers={
        "Content-Security-Policy": policy, "Referrer-Policy": "no-referrer"})


def _find_target(config: DashboardConfig, db: ReadDatabase, target_id: str) -> Target | None:
    stored = load_target_row(db, target_id)
    if stored is not None:
        return stored
    return next((target for target in config.registry if target.id == target_id), None)


# ---- data shared by pages and API ----------------------------------------------------------

def _states_data(db: ReadDatabase, filters: StateFilters, limit: int,
                 offset: int) -> dict[str, Any]:
    by_state = count_current_states(db, filters)
    rows = load_current_states(db, filters, limit=limit, offset=offset)
    return {"filters": asdict(filters), "count": sum(by_state.values()), "by_state": by_state,
            "limit": limit, "offset": offset, "states": rows}


def _target_data(config: DashboardConfig, db: ReadDatabase, store: Store,
                 target_id: str) -> dict[str, Any] | None:
    target = _find_target(config, db, target_id)
    states = load_current_states(db, StateFilters(target_id=target_id))
    if target is None and not states:
        return None
    urls = load_target_urls(db, target_id)  # a URL shared with another list's target too
    recent = load_recent_measurements(db, target_id, urls=urls)
    last_measured = max((row["measured_at"] for row in recent), default=None)
    end = (datetime.fromisoformat(last_measured.replace("Z", "+00:00")) if last_measured
           else datetime.now(UTC)).replace(hour=0, minute=0, second=0) + timedelta(days=1)
    window = Period(end - timedelta(days=TIMELINE_DAYS), end, "recent")
    daily = load_daily_counts(db, window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                              window.end.strftime("%Y-%m-%dT%H:%M:%SZ"), target_id=target_id,
                              urls=urls)
    timelines = []
    for vantage_id, url in sorted({(row.vantage_id, row.url) for row in daily}):
        cells = day_cells((row for row in daily
                           if row.vantage_id == vantage_id and row.url == url), window)
        timelines.append({"url": url, **asdict(Timeline(target_id, vantage_id, cells))})
    latest_first = sorted(states, key=lambda row: row["last_measured_at"] or "", reverse=True)
    chosen = {(row["vantage_id"], row["url"]) for row in sorted(
        latest_first, key=lambda row: row["state"] not in ("blocked", "anomaly"))[
        :LATEST_EVIDENCE]}
    evidence = []
    for state in (row for row in states if (row["vantage_id"], row["url"]) in chosen):
        document = store.load_measurement(state["last_uid"]) if state["last_uid"] else None
        pairs = compare_observations(document) if document else []
        evidence.append({"vantage_id": state["vantage_id"], "url": state["url"],
                         "uid": state["last_uid"], "state": state["state"],
                         "observations": [asdict(pair) for pair in pairs]})
    return {"target": asdict(target) if target else {"id": target_id, "name": target_id},
            "states": states, "recent_measurements": recent,
            "timeline": timelines,
            "latest_evidence": evidence}


def _archive_data(config: DashboardConfig) -> list[dict[str, Any]]:
    return [{"label": item.label, "formats": list(item.formats), "modified_at": item.modified_at,
             "files": {name: f"{config.prefix}/reports/{item.label}/report.{name}"
                       for name in item.formats}}
            for item in list_archive(config.settings.reports.out_dir)]


# ---- pages ---------------------------------------------------------------------------------

async def overview_page(request: web.Request) -> web.Response:
    config = _config(request)
    filters = _filters(request)
    try:
        limit, offset = _page_bounds(request)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None

    def work(db: ReadDatabase, _store: Store) -> tuple[dict[str, Any], dict[str, list[str]],
                                                        str]:
        return (_states_data(db, filters, limit, offset), load_filter_choices(db),
                _overview_chart(db, filters.list_name))

    data, choices, chart = await config.database.run(work)
    selected = {key: request.query.get(key, "") for key in _FILTER_KEYS}

    def page_url(start: int) -> str:
        query = {key: value for key, value in selected.items() if value}
        return f"{config.prefix}/?{urlencode({**query, 'limit': limit, 'offset': start})}"

    pages = {"first": offset + 1, "last": offset + len(data["states"]),
             "previous": page_url(max(offset - limit, 0)) if offset > 0 else None,
             "next": page_url(offset + limit) if offset + limit < data["count"] else None}
    return _page(request, "overview.html.j2", data=data, choices=choices, selected=selected,
                 counts=data["by_state"], pages=pages, chart=chart)


def _overview_chart(db: ReadDatabase, list_name: str | None) -> str:
    """Blocked URLs per day by list and vantage over the last TIMELINE_DAYS measured days."""
    latest = db.rows("SELECT MAX(measured_at) AS latest FROM measurements")[0]["latest"]
    end = (datetime.fromisoformat(latest.replace("Z", "+00:00")) if latest
           else datetime.now(UTC)).replace(hour=0, minute=0, second=0) + timedelta(days=1)
    window = Period(end - timedelta(days=TIMELINE_DAYS), end, "recent")
    daily = load_daily_counts(db, window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                              window.end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    memberships = {url: [name for name, _ in pairs if name]
                   for url, pairs in load_memberships(db).items()}
    points = count_blocked_per_day(daily, memberships, (list_name,) if list_name else ())
    return render_overview_svg([(point.day, f"{point.list_name or '(no list)'} at "
                                 f"{point.vantage_id}", point.blocked_urls)
                                for point in points], window.days,
                               f"Blocked URLs per day, last {TIMELINE_DAYS} days")


async def target_page(request: web.Request) -> web.Response:
    config = _config(request)
    target_id = request.match_info["target_id"]
    data = await config.database.run(
        lambda db, store: _target_data(config, db, store, target_id))
    if data is None:
        raise web.HTTPNotFound(text=f"no target {target_id!r}")
    charts = [(f"{timeline['url']} from {timeline['vantage_id']}", render_timeline_svg(
        Timeline(target_id, timeline["vantage_id"],
                 tuple(DayCell(**cell) for cell in timeline["days"])),
        f"{timeline['url']} from {timeline['vantage_id']}, last {TIMELINE_DAYS} days"))
        for timeline in data["timeline"]]
    return _page(request, "target.html.j2", data=data, charts=charts)


async def measurement_page(request: web.Request) -> web.Response:
    config = _config(request)
    uid = request.match_info["uid"]
    if not is_uid(uid):
        raise web.HTTPBadRequest(text=f"not a measurement uid: {uid!r}")
    document = await config.database.run(lambda _db, store: store.load_measurement(uid))
    if document is None:
        raise web.HTTPNotFound(text=f"no measurement {uid!r}")
    return _page(request, "measurement.html.j2", view=build_measurement_view(document))


async def reports_page(request: web.Request) -> web.Response:
    config = _config(request)
    return _page(request, "reports.html.j2", reports=_archive_data(config),
                 actions_enabled=bool(config.settings.reports.operator_token))


async def report_file(request: web.Request) -> web.StreamResponse:
    config = _config(request)
    root = Path(config.settings.reports.out_dir).resolve()
    wanted = (root / request.match_info["label"] / request.match_info["path"]).resolve()
    if not wanted.is_relative_to(root) or not wanted.is_file():
        raise web.HTTPNotFound(text="no such report file")
    if wanted.name == "report.html":
        # The file links each measurement's JSON next to it (it must work offline); read here,
        # a finding opens the readable measurement page instead.
        html = _EVIDENCE_LINK.sub(
            lambda match: f'href="{config.prefix}/measurements/{match[1]}"',
            wanted.read_text(encoding="utf-8"))
        return _page_response(html, _REPORT_POLICY)
    return web.FileResponse(wanted)


# ---- JSON API ------------------------------------------------------------------------------

def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(
        value, ensure_ascii=False, default=str))


async def api_states(request: web.Request) -> web.Response:
    config = _config(request)
    filters = _filters(request)
    try:
        limit, offset = _page_bounds(request)
    except ValueError as error:
        return _json({"error": str(error)}, status=400)
    return _json(await config.database.run(
        lambda db, _store: _states_data(db, filters, limit, offset)))


async def api_target(request: web.Request) -> web.Response:
    config = _config(request)
    target_id = request.match_info["target_id"]
    data = await config.database.run(
        lambda db, store: _target_data(config, db, store, target_id))
    if data is None:
        return _json({"error": f"no target {target_id!r}"}, status=404)
    return _json(data)


async def api_measurement(request: web.Request) -> web.Response:
    config = _config(request)
    uid = request.match_info["uid"]
    if not is_uid(uid):
        return _json({"error": f"not a measurement uid: {uid!r}"}, status=400)
    document = await config.database.run(lambda _db, store: store.load_measurement(uid))
    if document is None:
        return _json({"error": f"no measurement {uid!r}"}, status=404)
    return _json(document)


async def api_reports(request: web.Request) -> web.Response:
    return _json({"reports": _archive_data(_config(request))})


async def api_generate_report(request: web.Request) -> web.Response:
    """POST {"period": "2026-11", "formats": ["html"]}: writes a report now (operator only)."""
    config = _config(request)
    require_operator(request, config.settings.reports.operator_token)
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        return _json({"error": "body: not valid JSON"}, status=400)
    if not isinstance(body, dict):
        return _json({"error": "body: expected a JSON object"}, status=400)
    formats = body.get("formats") or list(DEFAULT_FORMATS)
    if not isinstance(formats, list) or any(name not in FORMATS for name in formats):
        return _json({"error": f"formats: a list of {', '.join(FORMATS)}"}, status=400)
    try:
        period = parse_period(str(body["period"])) if body.get("period") else previous_month(
            datetime.now(UTC))
    except PeriodError as error:
        return _json({"error": str(error)}, status=400)
    out_dir = config.settings.reports.out_dir
    registry = list(config.registry)

    def work() -> Any:
        # A store of its own on a worker thread: a month of aggregation must not hold up pages.
        store = config.store_factory()
        try:
            targets = merge_targets(registry, load_targets(ReadDatabase(store)))
            return generate_report(store, period, out_dir, formats, targets=targets)
        finally:
            store.close()

    try:
        written = await asyncio.to_thread(work)
    except OSError as error:  # the archive directory: missing rights, a file in the way, full
        return _json({"error": f"cannot write the report: {error}"}, status=500)
    return _json({"label": period.label, "evidence": written.evidence_count,
                  "files": [str(path.relative_to(Path(out_dir))) for path in written.files]},
                 status=201)


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    router.add_get(f"{prefix}/" if prefix else "/", overview_page)
    router.add_get(f"{prefix}/targets/{{target_id}}", target_page)
    router.add_get(f"{prefix}/measurements/{{uid}}", measurement_page)
    router.add_get(f"{prefix}/reports", reports_page)
    router.add_get(f"{prefix}/reports/{{label}}/{{path:.+}}", report_file)
    router.add_get(f"{prefix}/api/v1/states", api_states)
    router.add_get(f"{prefix}/api/v1/targets/{{target_id}}", api_target)
    router.add_get(f"{prefix}/api/v1/measurements/{{uid}}", api_measurement)
    router.add_get(f"{prefix}/api/v1/reports", api_reports)
    router.add_post(f"{prefix}/api/v1/reports", api_generate_report)
    router.add_static(f"{prefix}/static", _HERE / "static")
