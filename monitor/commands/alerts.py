"""`blockmon alerts`: list recorded alerts, acknowledge one, send a test through a channel."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import click

from monitor.alerts.channels.base import TransportError
from monitor.alerts.messages import build_test_payload
from monitor.alerts.service import channels_from_settings
from monitor.alerts.store_tables import AlertTables
from monitor.commands.status import load_settings_or_fail, open_store_for_reading
from monitor.store.rows import store_time


@click.group()
def alerts() -> None:
    """Alerts on new blocks, lifted blocks, method changes, outages and silent probes."""


@alerts.command("list")
@click.option("--state", type=click.Choice(["open", "acked", "all"]), default="open",
              show_default=True, help="Which alerts to show.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_alerts(ctx: click.Context, state: str, limit: int, as_json: bool) -> None:
    """Recorded alerts, newest first, with how many of their deliveries went out."""
    store = open_store_for_reading(load_settings_or_fail(ctx))
    try:
        rows = AlertTables(store).list_alerts(state=state, limit=limit)
    finally:
        store.close()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    if not rows:
        click.echo(f"no {state if state != 'all' else ''} alerts".replace("  ", " "))
        return
    for row in rows:
        click.echo(f"{row['id']:>5}  {row['status']:<5}  {row['created_at']}  "
                   f"sent {row['delivered']}/{row['deliveries']}  {row['summary']}")


@alerts.command()
@click.argument("alert_id", metavar="ID", type=int)
@click.pass_context
def ack(ctx: click.Context, alert_id: int) -> None:
    """Acknowledge alert ID (it leaves `alerts list`; its incident stays as it is)."""
    store = open_store_for_reading(load_settings_or_fail(ctx))
    try:
        outcome = AlertTables(store).ack_alert(alert_id, store_time(datetime.now(UTC)))
    finally:
        store.close()
    if outcome == "unknown":
        raise click.ClickException(f"alert {alert_id}: no such alert")
    click.echo(f"alert {alert_id}: " + ("acknowledged" if outcome == "acked"
                                        else "was already acknowledged"))


@alerts.command()
@click.argument("channel", type=click.Choice(["webhook", "slack", "email"]))
@click.pass_context
def test(ctx: click.Context, channel: str) -> None:
    """Send a test alert through CHANNEL now and say whether it was accepted."""
    settings = load_settings_or_fail(ctx)
    try:
        channels = channels_from_settings(settings.alerts)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if channel not in channels:
        needs = {"webhook": "webhook_url", "slack": "slack_url", "email": "smtp_host"}[channel]
        raise click.ClickException(f"channel {channel}: not configured ([alerts] {needs} is "
                                   "unset)")
    payload = build_test_payload(channel, store_time(datetime.now(UTC)))

    async def send() -> None:
        await asyncio.wait_for(channels[channel].send(payload, delivery_id=None),
                               timeout=settings.alerts.send_timeout_seconds)

    try:
        asyncio.run(send())
    except TransportError as error:
        raise click.ClickException(f"channel {channel}: not delivered: {error.message}") from None
    except TimeoutError:
        raise click.ClickException(
            f"channel {channel}: not delivered: no answer within "
            f"{settings.alerts.send_timeout_seconds:g} s") from None
    click.echo(f"channel {channel}: test alert accepted")
