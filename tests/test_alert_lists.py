"""Alerts and lists (issue 15): an alert names every list and target of its URL, and
[alerts] lists sends only alerts about URLs of those lists (through a real webhook)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.service import AlertService
from monitor.schema import PROBE_DATABASE
from monitor.settings import load_settings
from monitor.store import open_store
from tests.fixtures.alerts import WebhookReceiver
from tests.fixtures.store import synthetic_measurement
from tests.fixtures.two_lists import AZATTYQ, DNS, VK, record


def _with_alerts(config: Path, receiver: WebhookReceiver, lists: list[str]) -> Any:
    """The two-lists settings with alerts to `receiver`; VK (briefing only) blocked too."""
    config.write_text(config.read_text(encoding="utf-8") + (
        f'[alerts]\nenabled = true\nlists = {json.dumps(lists)}\n'
        f'webhook_url = "{receiver.url}"\nwebhook_secret = "{receiver.secret}"\n'
        # Three URLs, two blocked, no control: not to be read as an outage here.
        'outage_min_urls = 10\n'), encoding="utf-8")
    settings = load_settings(config, environ={})
    store = open_store(settings.storage.database_url, migration_sets=PROBE_DATABASE)
    for second in range(3):
        record(store, synthetic_measurement(url=VK, measured_at=f"2026-12-01 08:30:{second}0",
                                            target_id="vk", list_name="briefing", **DNS),
               "vk", confirmation=second)
    return settings, store


async def _alert(settings: Any, store: Any) -> list[dict[str, Any]]:
    async def in_store(work: Callable[[Any], Any]) -> Any:
        return work(store)

    service = AlertService.from_settings(settings, in_store)
    await service.tick()
    return [json.loads(row["payload"]) | {"deliveries": row["deliveries"]}
            for row in store.database.rows(
                "SELECT a.payload, (SELECT COUNT(*) FROM alert_deliveries d "
                "WHERE d.alert_id = a.id) AS deliveries FROM alerts a "
                "WHERE a.kind = 'block_confirmed' ORDER BY a.id")]


async def test_an_alert_names_every_list_and_target_of_its_url(
        two_lists_config: Path, webhook_receiver: WebhookReceiver) -> None:
    settings, store = _with_alerts(two_lists_config, webhook_receiver, [])
    try:
        recorded = await _alert(settings, store)
    finally:
        store.close()
    sent = {item["body"]["target"]["id"]: item["body"] for item in webhook_receiver.received}
    assert sorted(sent) == ["azattyq-org", "vk"]
    # Confirmed through the kz list's round, the shared URL's alert still names the briefing.
    azattyq = sent["azattyq-org"]
    assert azattyq["target"]["lists"] == ["briefing", "kz"]
    assert azattyq["target"]["memberships"] == [{"list": "briefing", "target_id": "azattyq"},
                                                {"list": "kz", "target_id": "azattyq-org"}]
    [place] = azattyq["where"]
    assert (place["url"], place["lists"], place["targets"]) == (
        AZATTYQ, ["briefing", "kz"], ["azattyq", "azattyq-org"])
    assert sent["vk"]["target"]["lists"] == ["briefing"]
    assert sent["vk"]["where"][0]["targets"] == ["vk"]
    assert [item["deliveries"] for item in recorded] == [1, 1]


@pytest.mark.parametrize(("lists", "delivered"), [
    (["kz"], ["azattyq-org"]),                 # VK is in the briefing only
    (["briefing"], ["azattyq-org", "vk"]),     # azattyq-org's URL is the briefing's azattyq
])
async def test_alerts_lists_sends_only_alerts_about_those_lists(
        two_lists_config: Path, webhook_receiver: WebhookReceiver, lists: list[str],
        delivered: list[str]) -> None:
    settings, store = _with_alerts(two_lists_config, webhook_receiver, lists)
    try:
        recorded = await _alert(settings, store)
    finally:
        store.close()
    assert sorted(item["body"]["target"]["id"] for item in webhook_receiver.received) == delivered
    # Both alerts are recorded (blockmon alerts list); the filtered one goes to no channel.
    assert {item["target"]["id"]: item["deliveries"] for item in recorded} == {
        "azattyq-org": 1, "vk": 1 if "vk" in delivered else 0}
