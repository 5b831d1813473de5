"""`blockmon show UID`: one measurement, readable: probe and control, verdict and why, evidence."""

from __future__ import annotations

import json

import click

from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.store.queries import is_uid
from reports.dashboard.measurement import build_measurement_view, render_measurement_text


@click.command()
@click.argument("uid")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True,
              help="text: readable; json: the stored OONI measurement as is.")
@click.pass_context
def show(ctx: click.Context, uid: str, output_format: str) -> None:
    """Show measurement UID: what the probe and the control saw, the verdict and the rule
    that decided, the certificate chain, the body and its fingerprint, the SNI retries."""
    if not is_uid(uid):
        raise click.BadParameter(f"not a measurement uid: {uid!r}", param_hint="UID")
    settings = load_settings_or_fail(ctx)
    store = open_store_for_reading(settings)
    try:
        document = store.load_measurement(uid)
    finally:
        store.close()
    if document is None:
        raise click.ClickException(f"no measurement {uid!r} in {settings.storage.database_url}"
                                   " (uids are in `blockmon history` and `status --format csv`)")
    if output_format == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(render_measurement_text(build_measurement_view(document)))
