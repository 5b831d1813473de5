"""vantage_degraded (finding 1): a degraded round raises one alert, its end one more, and
/metrics counts rounds by status; a real store and a real webhook receiver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.alerts.channels.webhook import WebhookChannel
from monitor.alerts.delivery import DeliveryPolicy
from monitor.alerts.evaluate import EvaluationConfig
from monitor.alerts.metrics import parse_metrics, read_snapshot, render_metrics
from monitor.alerts.service import AlertService
from monitor.alerts.vantage_health import degraded_vantages
from monitor.alerts.vocabulary import ALERT_KINDS
from tests.fixtures.alerts import WebhookReceiver


def service(store: Any, receiver: WebhookReceiver) -> AlertService:
    async def in_store(work: Callable[[Any], Any]) -> Any:
        return work(store)

    channel = WebhookChannel(receiver.url, secret=receiver.secret)
    config = EvaluationConfig(kinds=frozenset(ALERT_KINDS), channels=("webhook",))
    return AlertService(in_store, config, {"webhook": channel}, DeliveryPolicy())


def a_round(store: Any, status: str, reason: str | None = None) -> None:
    """A round a minute after the last one (the store's clock moved on)."""
    minutes = getattr(store, "test_minutes", 0) + 1
    store.test_minutes = minutes
    store.clock = lambda: datetime(2026, 12, 1, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    run_id = store.start_run("briefing", "kz-almaty-1")
    store.finish_run(run_id, status, {"measured": 3}, reason)


async def test_a_degraded_vantage_alerts_once_and_once_more_when_it_recovers(
        store: Any, webhook_receiver: WebhookReceiver) -> None:
    alerts = service(store, webhook_receiver)
    a_round(store, "ok")
    await alerts.tick()
    assert webhook_receiver.received == []
    for _ in range(3):  # three degraded rounds in a row: one alert
        a_round(store, "degraded", "no control helper: [probe] helper_url is not set")
        await alerts.tick()
    kinds = [item["body"]["kind"] for item in webhook_receiver.received]
    assert kinds == ["vantage_degraded"]
    assert webhook_receiver.received[0]["body"]["where"][0]["vantage_id"] == "kz-almaty-1"
    a_round(store, "interrupted")  # says nothing either way
    await alerts.tick()
    a_round(store, "ok")
    await alerts.tick()
    await alerts.tick()
    kinds = [item["body"]["kind"] for item in webhook_receiver.received]
    assert kinds == ["vantage_degraded", "vantage_recovered"]

    metrics = parse_metrics(render_metrics(read_snapshot(store)))
    assert metrics[("blockmon_rounds_total", frozenset({("status", "degraded")}))] == 3
    assert metrics[("blockmon_rounds_total", frozenset({("status", "ok")}))] == 2


def test_the_streak_starts_at_its_first_degraded_round() -> None:
    runs = [{"vantage_id": "a", "status": "degraded", "started_at": "3"},
            {"vantage_id": "b", "status": "ok", "started_at": "3"},
            {"vantage_id": "a", "status": "degraded", "started_at": "2"},
            {"vantage_id": "b", "status": "degraded", "started_at": "2"},
            {"vantage_id": "a", "status": "ok", "started_at": "1"}]
    wanted = degraded_vantages(runs)
    assert list(wanted) == ["degraded:a"] and wanted["degraded:a"][0].since == "2"
