"""`blockmon history`: one target's or URL's state changes and latest measurements."""

from __future__ import annotations

import json
from typing import Any

import click

from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.commands.tables import render_csv
from monitor.store import Store
from monitor.store.current_states import load_target_urls
from monitor.store.queries import ReadDatabase


def _change(transition: dict[str, Any]) -> str:
    before = transition["from_state"] or "(first seen)"
    if transition["from_method"] and transition["from_state"] == "blocked":
        before += f" ({transition['from_method']})"
    after = transition["to_state"]
    if transition["method"]:
        after += f" ({transition['method']})"
    return f"{before} -> {after}"


def render_history(name: str, transitions: list[dict[str, Any]],
                   measurements: list[dict[str, Any]]) -> str:
    lines = [f"State changes of {name}:"]
    lines += [f"  {t['at']}  {t['vantage_id']}  {_change(t)}  {t['url']}" for t in transitions]
    if not transitions:
        lines.append("  (none)")
    lines += ["", f"Latest {len(measurements)} measurements:"]
    for row in measurements:
        verdict = row["blocking"] if row["blocking"] is not None else "unknown"
        method = f" {row['blocking_method']}" if row["blocking_method"] else ""
        retest = f" re-test {row['confirmation']}" if row["confirmation"] else ""
        lines.append(f"  {row['measured_at']}  {row['vantage_id']}  blocking={verdict}{method}"
                     f"{retest}  {row['url']}  {row['uid']}")
    return "\n".join(lines)


@click.command()
@click.argument("target_or_url")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="How many recent measurements to show.")
@click.option("--vantage", "vantage_id", help="Only this vantage point.")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "csv"]),
              default="text", show_default=True)
@click.pass_context
def history(ctx: click.Context, target_or_url: str, limit: int, vantage_id: str | None,
            output_format: str) -> None:
    """Show TARGET_OR_URL's state changes (a target id like `azattyq`, or a full URL)."""
    by_url = "://" in target_or_url
    settings = load_settings_or_fail(ctx)
    store = open_store_for_reading(settings)
    try:
        urls = [target_or_url] if by_url else load_target_urls(ReadDatabase(store), target_or_url)
        transitions, measurements = load_history(store, target_or_url, urls, by_url=by_url,
                                                 vantage_id=vantage_id, limit=limit)
    finally:
        store.close()
    if not transitions and not measurements:
        kind = "URL" if by_url else "target id"
        raise click.ClickException(f"nothing stored for {kind} {target_or_url!r}"
                                   + (f" at vantage {vantage_id!r}" if vantage_id else ""))
    for row in measurements:
        row.pop("json")
    if output_format == "json":
        click.echo(json.dumps({"transitions": transitions, "measurements": measurements},
                              indent=2, ensure_ascii=False))
        return
    if output_format == "csv":
        rows = [{"kind": "state change", "at": t["at"], "vantage_id": t["vantage_id"],
                 "url": t["url"], "from_state": t["from_state"], "to_state": t["to_state"],
                 "method": t["method"], "uid": t["measurement_uid"]} for t in transitions]
        rows += [{"kind": "measurement", "at": m["measured_at"], "vantage_id": m["vantage_id"],
                  "url": m["url"], "to_state": m["blocking"], "method": m["blocking_method"],
                  "uid": m["uid"]} for m in measurements]
        click.echo(render_csv(_CSV_COLUMNS, rows), nl=False)
        return
    click.echo(render_history(target_or_url, transitions, measurements))


_CSV_COLUMNS = ("kind", "at", "vantage_id", "url", "from_state", "to_state", "method", "uid")


def load_history(store: Store, name: str, urls: list[str], *, by_url: bool,
                 vantage_id: str | None, limit: int) -> tuple[list[dict[str, Any]],
                                                              list[dict[str, Any]]]:
    """A target's or URL's transitions (oldest first) and latest measurements (newest first).

    A target's are those of every URL it has, whichever list's round measured them: a URL in
    two lists has one state, and its changes belong to both targets."""
    transitions = {row["id"]: row for url in urls
                   for row in store.load_transitions(url=url, vantage_id=vantage_id)}
    measurements = {row["uid"]: row for url in urls
                    for row in store.iter_measurements(url=url, vantage_id=vantage_id,
                                                       order="desc", limit=limit)}
    if not by_url:
        transitions.update((row["id"], row) for row in store.load_transitions(
            target_id=name, vantage_id=vantage_id))
        measurements.update((row["uid"], row) for row in store.iter_measurements(
            target_id=name, vantage_id=vantage_id, order="desc", limit=limit))
    latest = sorted(measurements.values(), key=lambda row: (row["measured_at"], row["uid"]),
                    reverse=True)[:limit]
    return sorted(transitions.values(), key=lambda row: (row["at"], row["id"])), latest
