"""`blockmon targets`: import Citizen Lab lists, list, show and validate target files."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.settings import Settings, SettingsError, load_settings
from targets.briefing import DEFAULT_BRIEFING_PATH, load_briefing
from targets.categories import category_name
from targets.checks import slugify
from targets.citizenlab import check_citizenlab_text, import_citizenlab_csv, read_test_list
from targets.model import BRIEFING_LIST_NAME, Target, TargetFileError, TargetList, find_target
from targets.registry import (
    check_registry_text,
    load_registry,
    read_target_file,
)
from targets.storage import DEFAULT_DATA_DIR, load_list, save_list


def _settings(ctx: click.Context) -> Settings:
    config_path = (ctx.find_root().obj or {}).get("config_path")
    try:
        return load_settings(config_path)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _lists_dir(ctx: click.Context, lists_dir: str | None) -> Path:
    if lists_dir is not None:
        return Path(lists_dir)
    if os.environ.get("BLOCKMON_DATA_DIR"):
        return Path(os.environ["BLOCKMON_DATA_DIR"]) / "lists"
    data_dir = _settings(ctx).storage.data_dir or DEFAULT_DATA_DIR
    return Path(data_dir) / "lists"


def _registry_path(ctx: click.Context) -> Path:
    return _settings(ctx).targets.registry_path


def _load(ctx: click.Context, name: str, lists_dir: str | None) -> TargetList:
    try:
        if name == BRIEFING_LIST_NAME:
            return load_registry(_registry_path(ctx))
        return load_list(name, _lists_dir(ctx, lists_dir))
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None


@click.group()
def targets() -> None:
    """The target registry and imported test lists: what blockmon measures and why."""


@targets.command(name="import", short_help="Import a Citizen Lab test list (CSV) as a named target list.")
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.option("--name", help="Name of the saved list (default: the file name without .csv).")
@click.option("--lists-dir", type=click.Path(file_okay=False),
              help="Where lists are saved (default: <data_dir>/lists; env BLOCKMON_DATA_DIR).")
@click.pass_context
def import_command(ctx: click.Context, csv_file: str, name: str | None, lists_dir: str | None) -> None:
    """Import a Citizen Lab test list (url,category_code,category_description,date_added,
    source,notes) as a named target list. A bad row rejects the whole file: nothing is saved."""
    list_name = name or slugify(Path(csv_file).stem)
    if list_name == BRIEFING_LIST_NAME:
        raise click.ClickException(f"--name: {BRIEFING_LIST_NAME!r} is the shipped registry; choose another name")
    directory = _lists_dir(ctx, lists_dir)
    try:
        target_list = import_citizenlab_csv(csv_file, list_name)
        path = save_list(
            target_list, directory, source=str(Path(csv_file).resolve()),
            imported_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"{directory}: cannot save the list ({error.strerror})") from None
    controls = len(target_list.controls())
    click.echo(f"imported {len(target_list.targets)} targets ({controls} controls) from {csv_file} "
               f"as list {list_name!r}: {path}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_target_table(targets_to_show: list[Target]) -> str:
    """One line per target; a '*' after the id marks a control target."""
    header = ("id", "name", "category", "briefing section", "urls")
    rows = [
        (
            target.id + (" *" if target.control else ""),
            _shorten(target.name, 40),
            target.category_code,
            _shorten(target.briefing.section, 40) if target.briefing else "-",
            str(len(target.urls)),
        )
        for target in targets_to_show
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


@targets.command(name="list")
@click.option("--list", "list_name", default=BRIEFING_LIST_NAME, show_default=True,
              help="Target list: 'briefing' (the registry) or an imported list's name or file.")
@click.option("--category", help="Only targets of this Citizen Lab category code (e.g. NEWS).")
@click.option("--lists-dir", type=click.Path(file_okay=False), help="Where imported lists are saved.")
@click.pass_context
def list_command(ctx: click.Context, list_name: str, category: str | None, lists_dir: str | None) -> None:
    """Show the targets of a list as a table (a '*' marks control targets)."""
    target_list = _load(ctx, list_name, lists_dir)
    shown = [t for t in target_list.targets if category is None or t.category_code == category.upper()]
    click.echo(render_target_table(shown))
    urls = sum(len(target.urls) for target in shown)
    controls = sum(1 for target in shown if target.control)
    click.echo(f"\n{len(shown)} targets ({controls} controls, marked *), {urls} URLs; list {target_list.name!r}")


def render_target(target: Target) -> str:
    category = category_name(target.category_code) or "unknown category"
    lines = [
        f"{target.id}: {target.name}",
        f"  list: {target.list_name}    category: {target.category_code} ({category})"
        f"    control: {'yes' if target.control else 'no'}",
    ]
    if target.notes:
        lines.append(f"  notes: {target.notes}")
    lines.append("  urls:" if target.urls else "  urls: none (see notes)")
    for target_url in target.urls:
        dates = " ".join(part for part in (
            f"since {target_url.since}" if target_url.since else "",
            f"until {target_url.until}" if target_url.until else "",
        ) if part)
        lines.append(f"    {target_url.role:<8} {target_url.url}" + (f"  ({dates})" if dates else ""))
        if target_url.note:
            lines.append(f"             {target_url.note}")
    if target.briefing is not None:
        claim = target.briefing
        lines += [
            "  briefing:",
            f"    section: {claim.section} (line {claim.line})",
            f"    claim:   {claim.claim}, period {claim.period}",
            f"    quote:   “{claim.quote}”",
            "    source:  KIBHR/IPHR briefing on Kazakhstan, 2015",
        ]
    return "\n".join(lines)


@targets.command(name="show")
@click.argument("target_id")
@click.option("--list", "list_name", default=BRIEFING_LIST_NAME, show_default=True, help="Target list to look in.")
@click.option("--lists-dir", type=click.Path(file_okay=False), help="Where imported lists are saved.")
@click.pass_context
def show_command(ctx: click.Context, target_id: str, list_name: str, lists_dir: str | None) -> None:
    """Show one target (by id or URL): its URLs with their lineage, and its briefing quotation."""
    target_list = _load(ctx, list_name, lists_dir)
    target = find_target(target_list, target_id)
    if target is None:
        raise click.ClickException(f"no target {target_id!r} in list {target_list.name!r} (see `blockmon targets list`)")
    click.echo(render_target(target))


@targets.command(name="validate", short_help="Check a target file or test list; every problem with file and line.")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--briefing", "briefing_path", type=click.Path(dir_okay=False),
              help="Briefing text to check quotations against "
                   "(default: ../shared/briefing/kazakhstan-briefing-2015.txt when it exists).")
@click.pass_context
def validate_command(ctx: click.Context, file: str | None, briefing_path: str | None) -> None:
    """Check a target file (default: the registry) or a Citizen Lab CSV; print every problem
    with its file and line. Exit status 1 when there are problems."""
    path = Path(file) if file is not None else _registry_path(ctx)
    if path.suffix.lower() == ".csv":
        try:
            checked, csv_problems = check_citizenlab_text(read_test_list(path), str(path),
                                                          slugify(path.stem))
        except TargetFileError as error:
            raise click.ClickException(str(error)) from None
        for csv_problem in csv_problems:
            click.echo(str(csv_problem), err=True)
        if csv_problems:
            raise click.ClickException(f"{path}: {len(csv_problems)} problem(s); "
                                       f"{len(checked.targets)} rows are fine")
        click.echo(f"ok: {path}: {len(checked.targets)} targets")
        return
    briefing = None
    if briefing_path is not None and not Path(briefing_path).is_file():
        raise click.ClickException(f"--briefing: no such file {briefing_path}")
    chosen_briefing = Path(briefing_path) if briefing_path else DEFAULT_BRIEFING_PATH
    if chosen_briefing.is_file():
        briefing = load_briefing(chosen_briefing)
    try:
        text = read_target_file(path)
    except TargetFileError as error:
        raise click.ClickException(str(error)) from None
    target_list, problems = check_registry_text(text, str(path), briefing, default_list_name=path.stem)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException(f"{path}: {len(problems)} problem(s)")
    quotes = sum(1 for target in target_list.targets if target.briefing)
    checked_against = f"{quotes} quotations checked against {chosen_briefing}" if briefing else "quotations NOT checked (no briefing text)"
    click.echo(f"ok: {path}: {len(target_list.targets)} targets, "
               f"{sum(len(t.urls) for t in target_list.targets)} URLs; {checked_against}")
