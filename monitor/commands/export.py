"""`blockmon export`: stored measurements as OONI JSON, one per line."""

from __future__ import annotations

import json
from typing import TextIO

import click

from monitor.commands.options import parse_time_option
from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.commands.tables import render_csv
from probes.ooni.export import needs_repair, repair_measurement

# The measurements table's verdict columns (docs/storage.md), without the JSON.
CSV_COLUMNS = ("uid", "measured_at", "vantage_id", "probe_cc", "probe_asn", "list_name",
               "target_id", "url", "blocking", "accessible", "blocking_method", "fingerprint_id",
               "anomaly", "confirmation", "control_failure", "run_id")


@click.command()
@click.option("--since", required=True, callback=parse_time_option,
              help="First day or time (UTC, inclusive), e.g. 2026-11-01 or 2026-11-01T06:00:00Z.")
@click.option("--until", callback=parse_time_option,
              help="End day or time (UTC, exclusive); default: now.")
@click.option("--vantage", "vantage_id", help="Only this vantage point.")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="jsonl: one OONI measurement (JSON) per line; csv: one row "
              "of verdict columns per measurement, for spreadsheets.")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: standard output).")
@click.pass_context
def export(ctx: click.Context, since: str, until: str | None, vantage_id: str | None,
           output_format: str, output: TextIO) -> None:
    """Export measurements taken in [--since, --until) as OONI JSON lines, oldest first."""
    if until is not None and until <= since:
        raise click.BadParameter(f"{until} is not after --since {since}", param_hint="--until")
    settings = load_settings_or_fail(ctx)
    store = open_store_for_reading(settings)
    count = 0
    try:
        rows = store.iter_measurements(since=since, until=until, vantage_id=vantage_id)
        if output_format == "csv":
            output.write(render_csv(CSV_COLUMNS, ()))  # the header, even for no rows
        for row in rows:
            if output_format == "csv":
                output.write(render_csv(CSV_COLUMNS, (row,)).split("\n", 1)[1])
            else:
                text = row["json"]
                if needs_repair(text):  # a row stored before rcode became OONI's integer
                    text = json.dumps(repair_measurement(json.loads(text)), ensure_ascii=False,
                                      separators=(",", ":"))
                output.write(text + "\n")
            count += 1
    finally:
        store.close()
    click.echo(f"exported {count} measurements", err=True)
