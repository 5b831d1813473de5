"""`blockmon serve`: the read-only dashboard and its JSON API over the local store."""

from __future__ import annotations

import asyncio

import click
from aiohttp import web

from monitor.alerts.metrics import MetricsSnapshot, add_metrics_route, read_snapshot
from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.serving import serve_until_stopped
from monitor.settings import Settings
from monitor.store import open_store
from probes.endpoints import split_host_port
from probes.server_limits import guard
from reports.dashboard import build_dashboard_app
from reports.dashboard.routes import CONFIG_KEY
from targets import TargetFileError, load_registry


def parse_listen(listen: str, where: str) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError:
        raise click.ClickException(f"{where} {listen!r}: use HOST:PORT like 127.0.0.1:8080") from None


def build_serve_app(settings: Settings) -> web.Application:
    """The dashboard over the local store, plus /metrics for Prometheus."""
    url = settings.storage.database_url
    try:
        registry = load_registry(settings.targets.registry_path).targets
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None
    app = build_dashboard_app(lambda: open_store(url, migrate=False), settings,
                              registry=registry)
    database = app[CONFIG_KEY].database

    async def fetch_metrics() -> MetricsSnapshot:
        snapshot: MetricsSnapshot = await database.run(lambda _db, store: read_snapshot(store))
        return snapshot

    # Prometheus scrapes the same process that serves the dashboard (Alertmanager users).
    add_metrics_route(app, fetch_metrics)
    guard(app)  # NUL or control characters in a path or query: 400, before any route
    return app


async def serve_dashboard(settings: Settings, host: str, port: int) -> None:
    url = settings.storage.database_url

    def announce(bound_port: int) -> None:
        click.echo(f"dashboard on http://{host}:{bound_port}/ (database {url}); Ctrl-C stops", err=True)

    try:
        await serve_until_stopped(build_serve_app(settings), host, port, on_listening=announce)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None


@click.command()
@click.option("--listen", metavar="HOST:PORT",
              help="Address to serve on. Default: [reports] listen (127.0.0.1:8080).")
@click.pass_context
def serve(ctx: click.Context, listen: str | None) -> None:
    """Serve the dashboard (current states, filters, target pages with evidence, the reports
    archive) and its JSON API under /api/v1/ from the local store. Read-only without login;
    generating a report needs [reports] operator_token."""
    settings = load_settings_or_fail(ctx)
    open_store_for_reading(settings).close()  # fails early, in one line, on a missing database
    host, port = parse_listen(listen or settings.reports.listen,
                              "--listen" if listen else "[reports] listen")
    asyncio.run(serve_dashboard(settings, host, port))
