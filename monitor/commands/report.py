"""`blockmon report`: write the report of a month, an ISO week or a range of days."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.settings import Settings
from monitor.store import Store
from monitor.store.queries import ReadDatabase, load_targets
from reports.collect import UnknownListError, merge_targets
from reports.periods import Period, PeriodError, parse_period, previous_month, range_period
from reports.write import DEFAULT_FORMATS, FORMATS, generate_report
from targets import TargetFileError, load_registry
from targets.model import Target


def report_targets(settings: Settings, store: Store) -> list[Target]:
    """The registry file's targets plus the ones only the store knows; a bad file is one line."""
    try:
        registry = list(load_registry(settings.targets.registry_path).targets)
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None
    return merge_targets(registry, load_targets(ReadDatabase(store)))


def choose_period(period: str | None, first_day: str | None, last_day: str | None,
                  now: datetime | None = None) -> Period:
    try:
        if period and (first_day or last_day):
            raise PeriodError("give either --period or --from/--to, not both")
        if first_day or last_day:
            if not (first_day and last_day):
                raise PeriodError("--from and --to go together")
            return range_period(first_day, last_day)
        if period:
            return parse_period(period)
        return previous_month(now or datetime.now(UTC))
    except PeriodError as error:
        raise click.ClickException(str(error)) from None


@click.command()
@click.option("--period", help="A month (2026-11) or an ISO week (2026-W47). "
              "Default: the last whole month.")
@click.option("--from", "first_day", metavar="DATE", help="First day (2026-11-01), with --to.")
@click.option("--to", "last_day", metavar="DATE", help="Last day, included (2026-11-30).")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True,
              help="Output format; repeat for several. Default: html, md and json; csv writes "
              "csv/<table>.csv, one file per table.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Archive directory; the report goes to OUT/<period>/. "
              "Default: [reports] out_dir.")
@click.option("--list", "lists", multiple=True, metavar="NAME",
              help="Only the targets and URLs of this list; repeat for several. The report "
              "goes to OUT/<period>--<lists>/.")
@click.pass_context
def report(ctx: click.Context, period: str | None, first_day: str | None, last_day: str | None,
           formats: tuple[str, ...], out_dir: str | None, lists: tuple[str, ...]) -> None:
    """Write a report: what was blocked where, since when, how, and each briefing claim's
    verdict, with the measurements behind every finding exported next to it."""
    settings = load_settings_or_fail(ctx)
    chosen = choose_period(period, first_day, last_day)
    if not (period or first_day or last_day):
        click.echo(f"period: {chosen.label} ({chosen.description}), the last whole month; "
                   "choose another with --period or --from/--to", err=True)
    store = open_store_for_reading(settings)
    try:
        written = generate_report(store, chosen, Path(out_dir or settings.reports.out_dir),
                                  formats or DEFAULT_FORMATS, targets=report_targets(settings, store),
                                  lists=lists)
    except (UnknownListError, ValueError) as error:
        raise click.ClickException(f"--list: {error}") from None
    except OSError as error:
        raise click.ClickException(f"cannot write the report: {error}") from None
    finally:
        store.close()
    for path in written.files:
        if path.parent == written.directory:
            click.echo(str(path))
    if written.evidence_count:
        click.echo(f"{written.evidence_count} evidence measurements in "
                   f"{written.directory / 'evidence'}")
    if written.measurements == 0:
        click.echo(f"the report of {chosen.label} is empty: nothing was measured in "
                   f"{chosen.description}", err=True)
