"""`blockmon history`: one target's or URL's state changes and latest measurements."""

from __future__ import annotations

import json
from typing import Any

import click

from monitor.commands.status import load_settings_or_fail, open_store_for_reading


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
@click.option("--format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True)
@click.pass_context
def history(ctx: click.Context, target_or_url: str, limit: int, vantage_id: str | None,
            output_format: str) -> None:
    """Show TARGET_OR_URL's state changes (a target id like `azattyq`, or a full URL)."""
    by_url = "://" in target_or_url
    url, target_id = (target_or_url, None) if by_url else (None, target_or_url)
    settings = load_settings_or_fail(ctx)
    store = open_store_for_reading(settings)
    try:
        transitions = store.load_transitions(url=url, target_id=target_id,
                                             vantage_id=vantage_id)
        measurements = list(store.iter_measurements(url=url, target_id=target_id,
                                                    vantage_id=vantage_id, order="desc",
                                                    limit=limit))
    finally:
        store.close()
    if not transitions and not measurements:
        kind = "URL" if by_url else "target id"
        raise click.ClickException(f"nothing stored for {kind} {target_or_url!r}"
                                   + (f" at vantage {vantage_id!r}" if vantage_id else ""))
    if output_format == "json":
        for row in measurements:
            row.pop("json")
        click.echo(json.dumps({"transitions": transitions, "measurements": measurements},
                              indent=2, ensure_ascii=False))
        return
    click.echo(render_history(target_or_url, transitions, measurements))
