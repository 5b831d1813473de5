"""A webhook receiver slower than the send timeout gets each alert exactly once (finding 3):
real loopback receiver, two senders (replicas) passing side by side on one store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from monitor.alerts.channels.webhook import WebhookChannel
from monitor.alerts.delivery import DeliveryPolicy
from monitor.alerts.evaluate import EvaluationConfig
from monitor.alerts.rules import RuleConfig
from monitor.alerts.service import AlertService
from monitor.alerts.store_tables import AlertTables
from tests.fixtures.alerts import WebhookReceiver

CONTROL = "https://control-example.org/"


def sites(count: int) -> list[str]:
    return [f"https://slow{n}.kz/" for n in range(count)]


def target_of(url: str) -> str:
    return "control-example" if url == CONTROL else url.split("//")[1].split(".")[0]


def rounds_confirming_blocks(feed: Callable[..., str], store: Any, urls: list[str]) -> None:
    """A clean round, then a round in which every site is blocked and confirmed (3 in a row)."""
    for url in [*urls, CONTROL]:
        feed(store, url=url, target_id=target_of(url), measured_at="2026-11-25 18:00:00")
    for url in urls:
        for retest in range(3):
            feed(store, url=url, target_id=target_of(url),
                 measured_at=f"2026-11-25 18:10:{retest * 10:02d}", blocking="dns",
                 accessible=False, blocking_method="dns.nxdomain")
    feed(store, url=CONTROL, target_id="control-example", measured_at="2026-11-25 18:10:00")


def sender(store: Any, channel: WebhookChannel, timeout: float) -> AlertService:
    async def in_store(work: Callable[[Any], Any]) -> Any:
        return work(store)

    config = EvaluationConfig(rules=RuleConfig(), kinds=frozenset({"block_confirmed"}),
                              channels=("webhook",), control_ids=frozenset({"control-example"}))
    policy = DeliveryPolicy(retry_base_seconds=1, retry_max_seconds=2, give_up_hours=24,
                            digest_threshold=1000, send_timeout_seconds=timeout,
                            max_messages_per_hour=1000)
    return AlertService(in_store, config, {"webhook": channel}, policy)


async def deliver_with_two_replicas(store: Any, receiver: WebhookReceiver, *, alerts: int,
                                    timeout: float) -> Counter[int]:
    """Two senders pass every 0.2 s (as the collector's alert loop) until all is sent."""
    channel = WebhookChannel(receiver.url, secret=receiver.secret, timeout=timeout)
    replicas = [sender(store, channel, timeout) for _ in range(2)]

    async def loop(service: AlertService) -> None:
        while True:
            await service.run_pass()
            await asyncio.sleep(0.2)

    tasks = [asyncio.ensure_future(loop(service)) for service in replicas]
    try:
        for _ in range(600):
            rows = AlertTables(store).rows("SELECT status FROM alert_deliveries")
            if len(rows) == alerts and all(row["status"] == "sent" for row in rows):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(receiver.delay + 0.5)  # a late duplicate would arrive by now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Counter(receiver.alert_ids())


async def test_a_receiver_slower_than_the_timeout_gets_each_alert_once(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.delay = 1.0
    rounds_confirming_blocks(feed_store, store, sites(3))
    seen = await deliver_with_two_replicas(store, webhook_receiver, alerts=3, timeout=0.3)
    assert len(seen) == 3 and set(seen.values()) == {1}
    statuses = AlertTables(store).rows("SELECT status, attempts FROM alert_deliveries")
    assert statuses == [{"status": "sent", "attempts": 1}] * 3


@pytest.mark.slow
async def test_twenty_alerts_to_a_receiver_answering_after_3_s_with_a_1_s_timeout(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.delay = 3.0
    rounds_confirming_blocks(feed_store, store, sites(20))
    seen = await deliver_with_two_replicas(store, webhook_receiver, alerts=20, timeout=1.0)
    assert len(seen) == 20 and set(seen.values()) == {1}
    assert len(webhook_receiver.received) == 20  # POSTs as the receiver counted them

