"""Alerts end to end on a real store and a real webhook receiver: signature, outage, retries,
exactly-once after downtime and restarts, digests, independent channels."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.alerts.channels.webhook import WebhookChannel
from monitor.alerts.delivery import DeliveryPolicy, retry_delay
from monitor.alerts.evaluate import EvaluationConfig
from monitor.alerts.rules import RuleConfig
from monitor.alerts.service import AlertService
from monitor.alerts.store_tables import AlertTables
from monitor.schema import PROBE_DATABASE
from monitor.store import open_store
from tests.fixtures.alerts import WebhookReceiver

KINDS = frozenset({"block_confirmed", "block_escalated", "block_lifted", "method_changed",
                   "outage", "outage_ended", "probe_silent", "probe_back"})
CONTROL = "https://control-example.org/"
SITES = [f"https://site{n}.kz/" for n in range(5)]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def service_for(store: Any, channels: dict[str, Any], clock: Clock, *,
                digest_threshold: int = 50, per_hour: int = 100) -> AlertService:
    async def in_store(work: Callable[[Any], Any]) -> Any:
        return work(store)

    config = EvaluationConfig(rules=RuleConfig(), kinds=KINDS, channels=tuple(sorted(channels)),
                              control_ids=frozenset({"control-example"}),
                              dashboard_url="https://dash.example.org")
    policy = DeliveryPolicy(retry_base_seconds=30, retry_max_seconds=600, give_up_hours=24,
                            digest_threshold=digest_threshold, send_timeout_seconds=5,
                            max_messages_per_hour=per_hour)
    return AlertService(in_store, config, channels, policy, clock=clock)


def target_of(url: str) -> str:
    return "control-example" if url == CONTROL else url.split("//")[1].split(".")[0]


def round_of(feed: Callable[..., str], store: Any, minute: int, *, blocked: list[str],
             down: list[str] = (), vantage: str = "kz-almaty-1", method: str = "dns.nxdomain",
             control_ok: bool = True) -> None:
    """One round (and its re-tests) at `vantage`: every site, plus the control."""
    for url in [*SITES, CONTROL]:
        at = f"2026-11-25 18:{minute:02d}:00"
        if url in blocked:
            for retest in range(3):  # scheduled + 2 confirmation re-tests
                feed(store, url=url, target_id=target_of(url), vantage_id=vantage,
                     measured_at=f"2026-11-25 18:{minute:02d}:{retest * 10:02d}",
                     blocking="dns", accessible=False, blocking_method=method)
        elif url in down or (url == CONTROL and not control_ok):
            feed(store, url=url, target_id=target_of(url), vantage_id=vantage, measured_at=at,
                 blocking=False, accessible=False)
        else:
            feed(store, url=url, target_id=target_of(url), vantage_id=vantage, measured_at=at)


async def test_a_confirmed_block_reaches_the_webhook_signed_and_complete(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    store.save_targets([{"id": "site0", "name": "Site Zero", "urls": [SITES[0]],
                         "briefing": {"section": "Internet censorship",
                                      "quote": "site0 was blocked"}}])
    clock = Clock()
    channel = WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret)
    service = service_for(store, {"webhook": channel}, clock)
    round_of(feed_store, store, 0, blocked=[])
    report = await service.tick()
    assert webhook_receiver.received == [] and report.sent == {}

    round_of(feed_store, store, 10, blocked=[SITES[0]])
    report = await service.tick()
    assert report.sent == {"webhook": 1}
    assert webhook_receiver.bad_signatures == 0
    [message] = webhook_receiver.received
    body = message["body"]
    assert body["kind"] == "block_confirmed" and body["schema"] == "blockmon.alert/1"
    assert body["target"] == {"id": "site0", "name": "Site Zero", "briefing": {
        "section": "Internet censorship", "quote": "site0 was blocked", "claim": None,
        "period": None}, "lists": [], "memberships": [{"list": None, "target_id": "site0"}]}
    [where] = body["where"]
    assert (where["vantage_id"], where["probe_asn"], where["method"], where["since"]) == (
        "kz-almaty-1", "AS9198", "dns.nxdomain", "2026-11-25T18:10:00Z")
    assert where["evidence_url"] == f"https://dash.example.org/measurements/{where['evidence_uid']}"
    assert store.load_measurement(where["evidence_uid"])["input"] == SITES[0]
    assert message["headers"]["X-Blockmon-Delivery"].isdigit()
    [row] = AlertTables(store).list_alerts(state="all")
    assert (row["id"], row["delivered"], row["deliveries"]) == (body["alert_id"], 1, 1)

    # Blocking moves from DNS to TLS interception, then is lifted.
    round_of(feed_store, store, 20, blocked=[SITES[0]], method="tls.mitm")
    await service.tick()
    round_of(feed_store, store, 30, blocked=[])
    await service.tick()
    kinds = [item["body"]["kind"] for item in webhook_receiver.received]
    assert kinds == ["block_confirmed", "method_changed", "block_lifted"]
    assert webhook_receiver.received[1]["body"]["previous_methods"] == ["dns.nxdomain"]
    [incident] = AlertTables(store).load_incidents(status="closed")
    assert incident.closed_at == "2026-11-25T18:30:00Z"
    assert incident.methods == ("dns.nxdomain", "tls.mitm")


async def test_a_vantage_losing_connectivity_raises_exactly_one_outage_alert(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    service = service_for(store, {"webhook": WebhookChannel(
        webhook_receiver.url, secret=webhook_receiver.secret)}, clock)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 0, blocked=[], vantage="kz-astana-2")
    await service.tick()
    # kz-almaty-1 goes dark: most sites and the control fail, several "confirmed" as blocked.
    round_of(feed_store, store, 10, blocked=SITES[:3], down=SITES[3:], control_ok=False)
    round_of(feed_store, store, 10, blocked=[], vantage="kz-astana-2")
    await service.tick()
    await service.tick()
    kinds = [item["body"]["kind"] for item in webhook_receiver.received]
    assert kinds == ["outage"]
    assert webhook_receiver.received[0]["body"]["where"][0]["vantage_id"] == "kz-almaty-1"
    # Back online: the outage ends, and the blocks it masked never become alerts.
    round_of(feed_store, store, 20, blocked=[])
    await service.tick()
    kinds = [item["body"]["kind"] for item in webhook_receiver.received]
    assert kinds == ["outage", "outage_ended"]


async def test_receiver_down_for_a_while_gets_every_alert_exactly_once(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    channel = WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret)
    service = service_for(store, {"webhook": channel}, clock)
    round_of(feed_store, store, 0, blocked=[])
    await webhook_receiver.stop()
    round_of(feed_store, store, 10, blocked=SITES[:2])
    first = await service.tick()
    assert first.retried == {"webhook": 2} and first.sent == {}
    pending = AlertTables(store).rows("SELECT status, attempts, last_error, next_attempt_at "
                                      "FROM alert_deliveries ORDER BY id")
    assert [(row["status"], row["attempts"]) for row in pending] == [("pending", 1)] * 2
    assert "ClientConnectorError" in pending[0]["last_error"]
    assert pending[0]["next_attempt_at"] == "2026-11-25T18:30:30Z"  # 30 s backoff

    # Still down at the second try: the delay doubles.
    clock.advance(31)
    round_of(feed_store, store, 12, blocked=SITES[:3])  # a third alert while down
    second = await service.tick()
    assert second.retried == {"webhook": 3}
    attempts = [row["attempts"] for row in AlertTables(store).rows(
        "SELECT attempts FROM alert_deliveries ORDER BY id")]
    assert attempts == [2, 2, 1]

    await webhook_receiver.start()
    await service.tick()  # nothing is due yet: backoff is respected
    assert webhook_receiver.received == []
    clock.advance(120)
    third = await service.tick()
    assert third.sent == {"webhook": 3}
    clock.advance(3600)
    await service.tick()
    ids = webhook_receiver.alert_ids()
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 3


async def test_a_restart_resends_nothing_and_takes_over_a_dead_claim(
        tmp_path: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    path = f"sqlite:///{tmp_path / 'restart.db'}"
    clock = Clock()
    channel = WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret)
    first_store = open_store(path, migration_sets=PROBE_DATABASE)
    first = service_for(first_store, {"webhook": channel}, clock)
    round_of(feed_store, first_store, 0, blocked=[])
    round_of(feed_store, first_store, 10, blocked=SITES[:2])
    await first.tick()
    assert len(webhook_receiver.received) == 2
    # A third alert is claimed by a sender that then dies (kill -9) before sending.
    round_of(feed_store, first_store, 20, blocked=SITES[:3])
    from monitor.alerts.delivery import claim_due
    from monitor.alerts.evaluate import evaluate_alerts

    evaluate_alerts(first_store, first.config, clock())
    [claimed] = claim_due(first_store, clock(), lease_seconds=60)
    first_store.close()

    second_store = open_store(path, migration_sets=PROBE_DATABASE)
    second = service_for(second_store, {"webhook": channel}, clock)
    await second.tick()
    assert len(webhook_receiver.received) == 2  # sent ones are not resent; the claim holds
    clock.advance(61)
    await second.tick()
    await second.tick()
    ids = webhook_receiver.alert_ids()
    assert len(ids) == 3 and len(set(ids)) == 3 and claimed["alert_id"] in ids
    assert len(AlertTables(second_store).list_alerts(state="all")) == 3
    second_store.close()


async def test_many_alerts_at_once_become_one_digest(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    channel = WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret)
    service = service_for(store, {"webhook": channel}, clock, digest_threshold=3)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:4])
    report = await service.tick()
    assert report.digests == 1 and report.sent == {"webhook": 4}
    [message] = webhook_receiver.received
    assert message["body"]["kind"] == "digest" and message["body"]["count"] == 4
    assert {alert["target"]["id"] for alert in message["body"]["alerts"]} == {
        "site0", "site1", "site2", "site3"}
    digested = AlertTables(store).rows("SELECT digest, status FROM alert_deliveries")
    assert digested == [{"digest": 1, "status": "sent"}] * 4


async def test_a_dead_channel_neither_blocks_others_nor_loses_alerts(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    dead = WebhookReceiver()  # a port nobody listens on
    channels = {"webhook": WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret),
                "backup": WebhookChannel(dead.url, secret=dead.secret, name="backup")}
    service = service_for(store, channels, clock)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    report = await service.tick()
    assert report.sent == {"webhook": 1} and report.retried == {"backup": 1}
    await dead.start()
    try:
        clock.advance(60)
        assert (await service.tick()).sent == {"backup": 1}
        assert len(dead.received) == 1 and len(webhook_receiver.received) == 1
    finally:
        await dead.stop()


async def test_a_refusing_receiver_is_a_permanent_failure(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    webhook_receiver.status = 410
    service = service_for(store, {"webhook": WebhookChannel(
        webhook_receiver.url, secret=webhook_receiver.secret)}, clock)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    report = await service.tick()
    assert report.failed == {"webhook": 1}
    [row] = AlertTables(store).rows("SELECT status, last_error FROM alert_deliveries")
    assert row["status"] == "failed" and "HTTP 410" in row["last_error"]


async def test_a_wrong_secret_is_refused_by_the_receiver(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    service = service_for(store, {"webhook": WebhookChannel(
        webhook_receiver.url, secret="not-the-secret")}, Clock())
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    await service.tick()
    assert webhook_receiver.bad_signatures == 1 and webhook_receiver.received == []


def test_retry_delay_doubles_up_to_the_cap() -> None:
    policy = DeliveryPolicy(retry_base_seconds=30, retry_max_seconds=300)
    assert [retry_delay(n, policy) for n in (1, 2, 3, 4, 5, 40)] == [30, 60, 120, 240, 300, 300]
    with pytest.raises(ValueError):
        retry_delay(0, policy)


def test_payload_is_stored_before_sending(store: Any, feed_store: Any) -> None:
    from monitor.alerts.evaluate import evaluate_alerts

    config = EvaluationConfig(kinds=KINDS, channels=("webhook", "email"),
                              control_ids=frozenset({"control-example"}))
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    [alert_id] = evaluate_alerts(store, config, Clock()())
    assert evaluate_alerts(store, config, Clock()()) == []  # idempotent
    rows = AlertTables(store).rows("SELECT channel, status FROM alert_deliveries "
                                   "WHERE alert_id = ? ORDER BY channel", (alert_id,))
    assert rows == [{"channel": "email", "status": "pending"},
                    {"channel": "webhook", "status": "pending"}]
    payload = json.loads(AlertTables(store).rows("SELECT payload FROM alerts")[0]["payload"])
    assert payload["incident"]["id"] is not None and payload["kind"] == "block_confirmed"


async def test_the_hourly_limit_holds_alerts_then_sends_them_as_one_digest(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    clock = Clock()
    channel = WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret)
    service = service_for(store, {"webhook": channel}, clock, per_hour=2)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    await service.tick()
    clock.advance(60)
    round_of(feed_store, store, 12, blocked=SITES[:2])
    await service.tick()
    assert [item["body"]["kind"] for item in webhook_receiver.received] == [
        "block_confirmed", "block_confirmed"]
    # The hour's budget is spent: two more alerts are held, not sent, not failed.
    clock.advance(60)
    round_of(feed_store, store, 14, blocked=SITES[:4])
    report = await service.tick()
    assert report.held == {"webhook": 2} and len(webhook_receiver.received) == 2
    held = AlertTables(store).rows("SELECT status, attempts, last_error FROM alert_deliveries "
                                   "WHERE sent_at IS NULL")
    assert [(row["status"], row["attempts"]) for row in held] == [("pending", 0)] * 2
    assert "over its hourly limit of 2 messages" in held[0]["last_error"]
    # An hour after the first message (but not the second), one slot is free: both held
    # alerts go out as one digest.
    clock.advance(3600 - 90)
    report = await service.tick()
    assert report.digests == 1 and report.sent == {"webhook": 2}
    last = webhook_receiver.received[-1]["body"]
    assert last["kind"] == "digest" and last["count"] == 2
    assert sorted(webhook_receiver.alert_ids()) == sorted(set(webhook_receiver.alert_ids()))


async def test_held_alerts_are_counted_for_their_own_channel(
        store: Any, feed_store: Any, webhook_receiver: WebhookReceiver) -> None:
    # Two channels over their hourly budget: each holds its own delivery.
    channels = {name: WebhookChannel(webhook_receiver.url, secret=webhook_receiver.secret,
                                     name=name) for name in ("webhook", "slack")}
    service = service_for(store, channels, Clock(), per_hour=0)
    round_of(feed_store, store, 0, blocked=[])
    round_of(feed_store, store, 10, blocked=SITES[:1])
    report = await service.tick()
    assert report.held == {"slack": 1, "webhook": 1} and webhook_receiver.received == []


async def test_a_receiver_answering_an_endless_body_does_not_hold_the_sender() -> None:
    import asyncio

    from aiohttp import web

    from monitor.alerts.channels.base import TransportError
    from monitor.alerts.channels.webhook import RESPONSE_READ_LIMIT, post_json

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        try:  # a body that keeps coming for 10 s, unless the sender hangs up first
            for _ in range(1000):
                await response.write(b"x" * 65536)
                await asyncio.sleep(0.01)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    app = web.Application()
    app.router.add_post("/", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(TransportError) as raised:
            await post_json("webhook", f"http://127.0.0.1:{port}/", {"kind": "test"}, timeout=3)
    finally:
        await runner.cleanup()
    assert "500" in str(raised.value)  # answered by its status, not by timing out
    assert len(str(raised.value)) < RESPONSE_READ_LIMIT + 200
