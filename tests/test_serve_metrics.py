"""`blockmon serve` answers Prometheus scrapes beside the dashboard; the serve loop all servers share."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.alerts.metrics import parse_metrics
from monitor.commands.serve import build_serve_app
from monitor.serving import serve_until_stopped
from monitor.settings import load_settings
from monitor.signals import ShutdownRequest


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


async def test_serve_until_stopped_serves_until_asked_then_cleans_up() -> None:
    cleaned: list[bool] = []
    app = web.Application()
    app.router.add_get("/", _ok)

    async def on_cleanup(_app: web.Application) -> None:
        cleaned.append(True)

    app.on_cleanup.append(on_cleanup)
    ports: list[int] = []
    shutdown = ShutdownRequest(quiet=True)
    serving = asyncio.ensure_future(
        serve_until_stopped(app, "127.0.0.1", 0, shutdown=shutdown, on_listening=ports.append)
    )
    while not ports:
        await asyncio.sleep(0.01)
    assert ports[0] != 0  # the port the system picked, not the 0 asked for
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{ports[0]}/") as reply:
            assert reply.status == 200 and await reply.text() == "ok"
    assert not serving.done()
    shutdown.trigger()
    await asyncio.wait_for(serving, 10)
    assert cleaned == [True]


async def test_serve_until_stopped_raises_when_the_port_is_taken_and_still_cleans_up() -> None:
    cleaned: list[bool] = []
    app = web.Application()

    async def on_cleanup(_app: web.Application) -> None:
        cleaned.append(True)

    app.on_cleanup.append(on_cleanup)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            await serve_until_stopped(app, "127.0.0.1", taken.getsockname()[1])
    assert cleaned == [True]


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")
