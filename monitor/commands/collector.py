"""`blockmon collector`: serve the central collector API, and manage probes' enrolment."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import click

from monitor.collector.app import CollectorConfig, serve_collector
from monitor.collector.backend import open_store as open_collector_store
from monitor.collector.registry import Registry
from monitor.collector.routes import UploadAdvice
from monitor.commands.options import load_asn_database_option
from monitor.schema import PROBE_DATABASE
from monitor.service.assignment import Assignment, AssignmentError
from monitor.service.collector_client import CollectorRefused, check_in, register_with_collector
from monitor.service.uploader import run_uploader, upload_pending
from monitor.settings import Settings, SettingsError, load_settings
from monitor.signals import ShutdownRequest
from monitor.store import StoreError, open_store
from monitor.store.database import DatabaseUrl, connect
from probes.endpoints import split_host_port
from reports.dashboard import dashboard_mount


def _settings(ctx: click.Context) -> Settings:
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
        database = connect(url)
    except Exception as error:  # StoreError, sqlite3.OperationalError
        raise click.ClickException(str(error).strip().splitlines()[0]) from None
    registry = Registry(database)
    registry.migrate()
    return registry


def _host_port(listen: str) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError:
        raise click.BadParameter(f"{listen!r} must be HOST:PORT", param_hint="--listen") from None


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
        standing_enrolment_secret=settings.collector.enrolment_secret,
        asn_database=settings.collector.asn_database or None,
        max_connections_per_client=settings.collector.max_connections_per_client,
        settings=settings,
        mount=dashboard_mount(lambda: open_collector_store(url), settings),
    )
    if config.asn_database:
        load_asn_database_option(config.asn_database, "[collector] asn_database")
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

    # The check every probe makes at check-in: a version they would all refuse is not published.
    try:
        Assignment(0, "", "toml", content, schedule).target_lists()
    except AssignmentError as error:
        message = str(error).replace("collector target list version 0", str(path))
        raise click.ClickException(f"not published: {message}") from None
    registry = _open_registry(_database_url(ctx, database))
    version = registry.publish_target_list(
        content, format="toml", schedule=schedule, now=datetime.now(UTC)
    )
    click.echo(f"published {path} as target list version {version}", file=sys.stdout)


# ---- probe side -----------------------------------------------------------------------------


@collector.command()
@click.option("--url", "collector_url", metavar="URL", help="Collector base URL (default: [collector] url).")
@click.option("--secret", envvar="BLOCKMON_ENROLMENT_SECRET", metavar="SECRET",
              help="Enrolment secret from the operator (or env BLOCKMON_ENROLMENT_SECRET; "
                   "default: [collector] enrolment_secret).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the token (mode 0600); point [collector] token_file at it.")
@click.pass_context
def register(
    ctx: click.Context, collector_url: str | None, secret: str | None, token_file: Path
) -> None:
    """Probe side: enrol this probe ([probe] vantage_id, cc, asn) and save its token."""

    settings = _settings(ctx)
    url = collector_url or settings.collector.url
    if not url:
        raise click.UsageError("no collector URL: pass --url or set [collector] url")
    secret = secret or settings.collector.enrolment_secret
    if not secret:
        raise click.UsageError("no enrolment secret: pass --secret or set [collector] enrolment_secret")

    async def enrol_here() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session:
            return await register_with_collector(session, url, secret, settings.probe)

    try:
        probe_id, token = asyncio.run(enrol_here())
    except CollectorRefused as error:
        raise click.ClickException(f"registration refused: {error}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise click.ClickException(f"cannot reach collector {url}: {type(error).__name__}") from None
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600, exist_ok=True)
    token_file.chmod(0o600)
    token_file.write_text(token + "\n", encoding="utf-8")
    click.echo(f"registered as {probe_id}; token written to {token_file} "
               f"(set [collector] token_file = \"{token_file}\")")


@collector.command(name="check-in")
@click.option("--save-targets", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the collector's target registry here when it changed.")
@click.pass_context
def check_in_command(ctx: click.Context, save_targets: Path | None) -> None:
    """Probe side: check in with the collector and fetch its current target lists."""

    settings = _settings(ctx)
    url, token = settings.collector.url, settings.collector.token
    if not url or not token:
        raise click.UsageError("set [collector] url and token (or token_file) first")
    version_file = save_targets.with_name(save_targets.name + ".version") if save_targets else None
    known = None
    if version_file is not None and version_file.is_file():
        text = version_file.read_text().strip()
        known = int(text) if text.isdigit() else None

    async def ask() -> Any:
        async with aiohttp.ClientSession() as session:
            return await check_in(session, url, token, known)

    try:
        answer = asyncio.run(ask())
    except CollectorRefused as error:
        raise click.ClickException(f"check-in refused: {error}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise click.ClickException(
            f"cannot reach collector {settings.collector.url}: {type(error).__name__}") from None
    if answer.targets is None:
        click.echo(f"{answer.probe_id}: target lists unchanged (version {answer.targets_version})")
        return
    click.echo(f"{answer.probe_id}: target lists version {answer.targets_version}, "
               f"schedule {json.dumps(answer.targets['schedule'], sort_keys=True)}")
    if save_targets is not None and version_file is not None:
        save_targets.write_text(answer.targets["content"], encoding="utf-8")
        version_file.write_text(f"{answer.targets_version}\n", encoding="utf-8")
        click.echo(f"saved to {save_targets}")


@collector.command()
@click.option("--loop", is_flag=True, help="Keep uploading every [collector] upload_interval_seconds.")
@click.pass_context
def upload(ctx: click.Context, loop: bool) -> None:
    """Probe side: send the spooled measurements to [collector] url now (or keep doing so)."""
    settings = _settings(ctx)
    if not settings.collector.url or not settings.collector.token:
        raise click.UsageError("set [collector] url and token (or token_file) first")
    try:
        store = open_store(settings.storage.database_url, spool=True,
                           migration_sets=PROBE_DATABASE)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    rejections = Path(settings.storage.data_dir) / "upload-rejected.jsonl"

    async def once() -> Any:
        async with aiohttp.ClientSession() as session:
            return await upload_pending(store, settings, session, rejection_log=rejections)

    async def forever() -> None:
        shutdown = ShutdownRequest(quiet=True)
        shutdown.install()
        await run_uploader(store, settings, stop=shutdown.requested, rejection_log=rejections)

    try:
        if loop:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            asyncio.run(forever())
            return
        result = asyncio.run(once())
    finally:
        store.close()
    click.echo(f"uploaded {result.uploaded} ({result.new_at_collector} new at the collector), "
               f"refused {result.rejected}, waiting {result.backlog}")
    if result.error:
        raise click.ClickException(f"upload stopped: {result.error}")
