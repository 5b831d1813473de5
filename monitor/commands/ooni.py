"""`blockmon ooni import`: OONI's measurements (files or OONI's API) re-judged into the store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from monitor.commands.options import parse_time_option
from monitor.commands.status import load_settings_or_fail
from monitor.ooni.api import ApiError, ApiQuery, fetch_measurements
from monitor.ooni.files import measurement_files, read_lines
from monitor.ooni.importer import OoniImporter
from monitor.ooni.progress import ImportProgress
from monitor.schema import PROBE_DATABASE
from monitor.settings import Settings
from monitor.store import StoreError, open_store
from probes.fingerprints_load import FingerprintFileError, fingerprints_with_extras
from probes.fingerprints_match import FingerprintDB
from targets.model import Target, TargetFileError
from targets.registry import load_registry

PROGRESS_EVERY = 500  # measurements between two progress lines when stderr is no terminal


@click.group()
def ooni() -> None:
    """OONI's public measurements beside blockmon's own (docs/ooni.md)."""


@ooni.command("import")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--api", "api_url", is_flag=False, flag_value="", default=None,
              help="Fetch from OONI's measurement API instead of files; optional base URL "
                   "(default: [ooni] api_url).")
@click.option("--probe-cc", help="API: only this country (e.g. KZ).")
@click.option("--probe-asn", help="API: only this network (e.g. AS9198).")
@click.option("--since", callback=parse_time_option, help="API: first day (UTC), e.g. 2024-01-01.")
@click.option("--until", callback=parse_time_option, help="API: end day (UTC, exclusive).")
@click.option("--url", "urls", multiple=True, help="API: only this input URL (repeatable).")
@click.option("--domain", "domains", multiple=True, help="API: only this domain (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="API: at most this many measurements.")
@click.option("--cursor", type=click.Path(dir_okay=False),
              help="API: file keeping the next page, so an interrupted import resumes there.")
@click.pass_context
def import_command(ctx: click.Context, paths: tuple[str, ...], api_url: str | None,
                   probe_cc: str | None, probe_asn: str | None, since: str | None,
                   until: str | None, urls: tuple[str, ...], domains: tuple[str, ...],
                   limit: int | None, cursor: str | None) -> None:
    """Import OONI Web Connectivity measurements from JSONL / JSONL.gz files and directories
    (what OONI publishes and `oonidata sync` downloads), or from OONI's API with --api.

    Each is normalised, re-judged by blockmon's analysis, stored once per measurement_uid as
    vantage ooni:<cc>:<asn> with OONI's verdict kept beside, and moves that network's states."""
    if not paths and api_url is None:
        raise click.UsageError("name files or directories to import, or --api")
    settings = load_settings_or_fail(ctx)
    targets = _targets(settings)
    try:
        store = open_store(settings.storage.database_url, migration_sets=PROBE_DATABASE)
    except StoreError as error:
        raise click.ClickException(str(error)) from None

    progress = ImportProgress(sys.stderr, every=PROGRESS_EVERY)
    importer = OoniImporter(store, targets,
                            confirmations_needed=settings.schedule.confirmations_needed,
                            fingerprints=_fingerprints(settings), report=progress.say)
    try:
        if api_url is not None:
            query = ApiQuery(probe_cc=probe_cc, probe_asn=probe_asn, since=since, until=until,
                             inputs=urls, domains=domains, limit=limit)
            lines: Iterator[tuple[str, dict[str, Any]]] = fetch_measurements(
                api_url or settings.ooni.api_url, query, interval=settings.ooni.api_interval_seconds,
                cursor_path=cursor, on_error=importer.bad_line)
        else:
            lines = _file_lines(paths, importer, progress)
        try:
            for place, measurement in lines:
                progress.read(place)
                importer.add(place, measurement)
        except ApiError as error:
            importer.flush()
            progress.close()
            click.echo(importer.counts.summary(), err=True)
            resume = " (run again with the same --cursor to resume)" if cursor else ""
            raise click.ClickException(f"OONI API: {error}{resume}") from None
        importer.flush()
    finally:
        store.close()
    progress.close()
    click.echo(importer.counts.summary(), err=True)
    if importer.counts.bad:
        sys.exit(1)


def _file_lines(paths: tuple[str, ...], importer: OoniImporter,
                progress: ImportProgress) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in measurement_files(paths):
        progress.say(f"reading {path}")
        for line in read_lines(path):
            if line.measurement is None:
                importer.bad_line(line.place, line.error or "unreadable")
            else:
                yield line.place, line.measurement


def _fingerprints(settings: Settings) -> FingerprintDB:
    try:
        return fingerprints_with_extras(settings.probe.extra_fingerprints or None)
    except FingerprintFileError as error:
        raise click.ClickException(f"[probe] extra_fingerprints: {error}") from None


def _targets(settings: Settings) -> tuple[Target, ...]:
    try:
        return load_registry(settings.targets.registry_path).targets
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(
            f"targets registry {settings.targets.registry_path}: {error.strerror}") from None
