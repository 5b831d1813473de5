"""`blockmon serve` answers Prometheus scrapes beside the dashboard, from the same store."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from monitor.alerts.metrics import parse_metrics
from monitor.commands.serve import build_serve_app
from monitor.settings import load_settings


async def test_serve_exposes_metrics_of_the_local_store(history_store: Any) -> None:
    settings = load_settings(None, {"BLOCKMON_STORAGE_DATABASE": history_store.url})
    async with TestClient(TestServer(build_serve_app(settings))) as client:
        scrape = await client.get("/metrics")
        assert scrape.status == 200
        parsed = parse_metrics(await scrape.text())
        overview = await client.get("/")
        assert overview.status == 200
    states = {
        (dict(labels)["url"], dict(labels)["vantage"]): dict(labels)["state"]
        for (name, labels), value in parsed.items()
        if name == "blockmon_target_state" and value == 1
    }
    assert states[("https://blocked.example/", "kz-almaty-1")] == "blocked"
    assert states[("https://lifted.example/", "kz-almaty-1")] == "accessible"
    blocked_by_mitm = [
        value for (name, labels), value in parsed.items()
        if name == "blockmon_measurements_total" and dict(labels).get("method") == "tls.mitm"
    ]
    assert blocked_by_mitm and sum(blocked_by_mitm) > 0
