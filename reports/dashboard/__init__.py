"""The read-only web dashboard: mount it on any aiohttp app (blockmon serve, the collector)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from monitor.settings import Settings
from reports.dashboard.access import DashboardDatabase
from reports.dashboard.routes import CONFIG_KEY, DashboardConfig, add_routes
from targets.model import Target

__all__ = ["add_dashboard_routes", "build_dashboard_app", "dashboard_mount"]


def add_dashboard_routes(app: web.Application, store_factory: Callable[[], Any],
                         settings: Settings, *, prefix: str = "",
                         registry: tuple[Target, ...] = ()) -> None:
    """Adds the pages, the JSON API (/api/v1/states, targets, measurements, reports) and static
    files under `prefix` ("" or e.g. "/dashboard").

    `store_factory` opens a Store (SQLite or PostgreSQL); the dashboard opens one for its
    reading thread and one per "generate report now". `registry` names targets the store's
    targets table lacks.
    """
    prefix = prefix.rstrip("/")
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.do"])
    database = DashboardDatabase(store_factory)
    app[CONFIG_KEY] = DashboardConfig(database=database, settings=settings, prefix=prefix,
                                      registry=registry, templates=templates,
                                      store_factory=store_factory)

    async def close_database(_app: web.Application) -> None:
        await database.close()

    app.on_cleanup.append(close_database)
    add_routes(app, prefix)


def build_dashboard_app(store_factory: Callable[[], Any], settings: Settings, *,
                        registry: tuple[Target, ...] = ()) -> web.Application:
    """A stand-alone application serving only the dashboard (what `blockmon serve` runs)."""
    app = web.Application()
    add_dashboard_routes(app, store_factory, settings, registry=registry)
    return app


def dashboard_mount(store_factory: Callable[[], Any],
                    settings: Settings) -> Callable[[web.Application], None]:
    """What the collector's `mount` takes: the dashboard and its API under /dashboard/."""

    def mount(app: web.Application) -> None:
        add_dashboard_routes(app, store_factory, settings, prefix="/dashboard")

    return mount
