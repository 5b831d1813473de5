"""`blockmon status`: the current state of every measured URL, blocked first."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import click

from monitor.commands.tables import LONG_TABLE, render_csv
from monitor.schema import PROBE_DATABASE
from monitor.settings import Settings, SettingsError, load_settings
from monitor.store import Store, StoreError, open_store, sqlite_path
from monitor.store.current_states import (
    StateFilters,
    load_current_states,
    load_filter_choices,
    state_rank,
)
from monitor.store.queries import ReadDatabase
from probes.vocabulary import TARGET_STATES


def load_settings_or_fail(ctx: click.Context) -> Settings:
    """The settings named by the global --config option; a bad file is one error line."""
    try:
        return load_settings((ctx.obj or {}).get("config_path"))
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def open_store_for_reading(settings: Settings) -> Store:
    """The configured store; refuses to create an empty SQLite file just to read it."""
    url = settings.storage.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(
            f"no database at {path} ([storage] database): run `blockmon run` or "
            "`blockmon demo` first")
    # A file or directory this user cannot write (another user's data, a read-only mount) is
    # read without writing: SQLite in WAL mode otherwise fails "attempt to write a readonly
    # database" on the first migration check.
    read_only = path is not None and not (os.access(path, os.W_OK)
                                          and os.access(path.parent, os.W_OK))
    try:
        return open_store(url, migration_sets=PROBE_DATABASE, read_only=read_only)
    except StoreError as error:
        raise click.ClickException(str(error)) from None


def parked_reasons(rows: list[dict[str, Any]]) -> Counter[str]:
    """Why uploads are parked, counted: "400 measurements[7].x: ..." counts as "400 x: ..."."""
    return Counter(re.sub(r"measurements\[\d+\]\.?", "", str(row["reason"] or "unknown"))
                   for row in rows)


def render_state_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width text table of target_state rows (with every list each URL is in)."""
    headers = ("STATE", "METHOD", "SINCE", "VANTAGE", "TARGET", "LISTS", "URL")
    lines = [(row["state"], row["method"] or "-", row["since"], row["vantage_id"],
              row["target_id"] or "-", ",".join(row.get("lists") or []) or "-", row["url"])
             for row in rows]
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(headers, *lines, strict=True)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *lines])


def summarize_states(rows: list[dict[str, Any]]) -> dict[str, int]:
    """URLs (x vantages) per state, blocked first."""
    counts = Counter(row["state"] for row in rows)
    return {state: counts[state] for state in sorted(counts, key=state_rank)}


_CSV_COLUMNS = ("state", "method", "since", "vantage_id", "target_id", "target_name", "lists",
                "category_code", "url", "last_measured_at", "last_uid", "probe_asn")


def render_states_csv(rows: list[dict[str, Any]]) -> str:
    """The state rows as CSV, one line per (vantage, URL); lists joined with spaces."""
    return render_csv(_CSV_COLUMNS, ({**row, "lists": " ".join(row.get("lists") or [])}
                                     for row in rows))


_FILTER_NAMES = (("list_name", "--list"), ("state", "--state"), ("category", "--category"),
                 ("vantage_id", "--vantage"))


def describe_empty_filter(filters: StateFilters, choices: dict[str, list[str]]) -> str:
    """Why nothing matched: each filter given, and the values that exist for it."""
    given = [(option, getattr(filters, key), choices.get(key, []))
             for key, option in _FILTER_NAMES if getattr(filters, key)]
    if not given:
        return "nothing measured yet"
    parts = [f"{option} {value}" + ("" if value in known else
                                    f" (known: {', '.join(known) if known else 'none'})")
             for option, value, known in given]
    return "no URL matches " + ", ".join(parts)


@click.command()
@click.option("--list", "list_name", help="Only URLs of this target list (a URL in several "
              "lists is shown under each).")
@click.option("--state", type=click.Choice(TARGET_STATES), help="Only URLs in this state.")
@click.option("--category", help="Only targets of this Citizen Lab category code (e.g. NEWS).")
@click.option("--vantage", "vantage_id", help="Only this vantage point.")
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True)
@click.pass_context
def status(ctx: click.Context, list_name: str | None, state: str | None, category: str | None,
           vantage_id: str | None, output_format: str) -> None:
    """Show the current state of each measured URL (blocked first), and since when."""
    settings = load_settings_or_fail(ctx)
    store = open_store_for_reading(settings)
    filters = StateFilters(list_name=list_name, state=state, vantage_id=vantage_id,
                           category=category.upper() if category else None)
    try:
        db = ReadDatabase(store)
        rows = load_current_states(db, filters)
        choices = load_filter_choices(db) if not rows else {}
        backlog = store.spool_backlog() if settings.collector.url else None
        parked = store.spool_parked() if settings.collector.url else None
        parked_rows = store.load_parked(limit=10_000) if parked else []
    finally:
        store.close()
    summary = summarize_states(rows)
    if output_format == "json":
        click.echo(json.dumps({"states": rows, "summary": summary, "spool_backlog": backlog,
                               "spool_parked": parked},
                              indent=2, ensure_ascii=False))
        return
    if output_format == "csv":
        click.echo(render_states_csv(rows), nl=False)
        return
    counts = ", ".join(f"{count} {name}" for name, count in summary.items())
    if rows:
        if len(rows) > LONG_TABLE:
            click.echo(f"{len(rows)} URLs: {counts}\n")
        click.echo(render_state_table(rows))
        click.echo("")
        click.echo(f"{len(rows)} URLs: {counts}")
    else:
        click.echo(f"0 URLs: {describe_empty_filter(filters, choices)}")
    if backlog is not None:
        click.echo(f"spool: {backlog} measurements waiting for upload to {settings.collector.url}"
                   + (f", {parked} parked (refused by the collector)" if parked else ""))
        for reason, count in parked_reasons(parked_rows).most_common(5):
            click.echo(f"  parked {count}: {reason}")
