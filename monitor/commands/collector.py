"""`blockmon collector`: serve the central collector API, and manage probes' enrolment."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from monitor.collector.database import DatabaseUrl, connect
from monitor.collector.registry import Registry


def _settings(ctx: click.Context) -> Any:
    from monitor.settings import SettingsError, load_settings

    config_path = (ctx.find_root().obj or {}).get("config_path")
    try:
        return load_settings(config_path)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _database_url(ctx: click.Context, database: str | None) -> DatabaseUrl:
    chosen = database or (ctx.obj or {}).get("collector_database")
    if chosen is None:
        chosen = _settings(ctx).storage.database_url
    try:
        return DatabaseUrl.parse(chosen)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--database") from None


def _open_registry(url: DatabaseUrl) -> Registry:
    try:
        connection = connect(url)
    except Exception as error:  # psycopg.OperationalError, sqlite3.OperationalError
        raise click.ClickException(
            f"database {url.describe()}: cannot connect: {str(error).strip().splitlines()[0]}"
        ) from None
    registry = Registry(connection, url.dialect)
    registry.migrate()
    return registry


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{listen!r} must be HOST:PORT", param_hint="--listen")
    return host.strip("[]"), int(port)


database_option = click.option(
    "--database",
    metavar="URL",
    help="postgresql://user@host:port/db or sqlite:///PATH (default: [storage] database).",
)


@click.group(invoke_without_command=True)
@click.option("--listen", metavar="HOST:PORT", help="Address to serve on (default: [collector] listen).")
@database_option
@click.option("--database-threads", type=click.IntRange(1, 64), help="Threads doing database work.")
@click.option("--log-client-addresses", is_flag=True, help="Put probes' IP addresses in the access log (off: privacy).")
@click.pass_context
def collector(
    ctx: click.Context,
    listen: str | None,
    database: str | None,
    database_threads: int | None,
    log_client_addresses: bool,
) -> None:
    """Run the central collector that probes upload measurements to.

    Without a subcommand, serves the /api/v1/ API until SIGTERM. Subcommands manage enrolment.
    """
    ctx.ensure_object(dict)
    ctx.obj["collector_database"] = database
    if ctx.invoked_subcommand is not None:
        return
    from monitor.collector.app import CollectorConfig, serve_collector
    from monitor.collector.routes import UploadAdvice

    settings = _settings(ctx)
    url = _database_url(ctx, database)
    host, port = _host_port(listen or settings.collector.listen)
    config = CollectorConfig(
        database=url,
        host=host,
        port=port,
        upload_advice=UploadAdvice(
            batch=settings.collector.upload_batch,
            interval_seconds=settings.collector.upload_interval_seconds,
        ),
        database_threads=database_threads,
        log_client_addresses=log_client_addresses,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve_collector(config))
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None


@collector.command()
@database_option
@click.option("--vantage", metavar="ID", help="Bind the secret to this vantage id.")
@click.option("--uses", type=click.IntRange(1, 10_000), default=1, show_default=True, help="How many probes may enrol with it.")
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True, help="Days until it expires.")
@click.option("--note", default="", help="Free text for the operator (who got it).")
@click.pass_context
def enrol(
    ctx: click.Context, database: str | None, vantage: str | None, uses: int, days: int, note: str
) -> None:
    """Mint an enrolment secret for new probes (printed once, stored hashed)."""
    registry = _open_registry(_database_url(ctx, database))
    secret = registry.create_enrolment_secret(
        now=datetime.now(UTC),
        valid_for=timedelta(days=days),
        uses=uses,
        vantage_id=vantage,
        note=note,
    )
    click.echo(secret)


@collector.command()
@database_option
@click.argument("probe_id")
@click.pass_context
def revoke(ctx: click.Context, database: str | None, probe_id: str) -> None:
    """Revoke PROBE_ID: its tokens stop working at once, on every replica."""
    registry = _open_registry(_database_url(ctx, database))
    if not registry.revoke_probe(probe_id, now=datetime.now(UTC)):
        raise click.ClickException(f"no enrolled probe {probe_id!r} (see: blockmon collector probes)")
    click.echo(f"revoked {probe_id}")


@collector.command()
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def probes(ctx: click.Context, database: str | None, as_json: bool) -> None:
    """List enrolled probes, when they last checked in, and whether they are revoked."""
    registry = _open_registry(_database_url(ctx, database))
    for probe in registry.list_probes():
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(probe)))
            continue
        status = f"revoked {probe.revoked_at}" if probe.revoked_at else "active"
        click.echo(
            f"{probe.probe_id}\t{probe.probe_cc}\t{probe.probe_asn}\t"
            f"last seen {probe.last_seen_at or 'never'}\t{status}"
        )


@collector.command(name="publish-targets")
@database_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--interval-minutes", type=click.IntRange(1, 7 * 24 * 60), default=60, show_default=True, help="How often probes measure the lists.")
@click.option("--lists", default="", help="Comma-separated list names probes should measure (empty: all).")
@click.pass_context
def publish_targets(
    ctx: click.Context, database: str | None, path: Path, interval_minutes: int, lists: str
) -> None:
    """Publish PATH (a target registry TOML) as the next version probes get at check-in."""
    import tomllib

    try:
        content = path.read_text(encoding="utf-8")
        tomllib.loads(content)
    except OSError as error:
        raise click.ClickException(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise click.ClickException(f"{path}: not valid TOML: {error}") from None
    schedule = {
        "interval_minutes": interval_minutes,
        "lists": [name.strip() for name in lists.split(",") if name.strip()],
    }
    registry = _open_registry(_database_url(ctx, database))
    version = registry.publish_target_list(
        content, format="toml", schedule=schedule, now=datetime.now(UTC)
    )
    click.echo(f"published {path} as target list version {version}", file=sys.stdout)
