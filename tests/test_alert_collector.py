"""Alerts at a collector: late spooled uploads still confirm blocks (dated when measured), a
silent probe raises its own alert, and /metrics is served on the collector's port."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.alerts.metrics import parse_metrics
from monitor.alerts.service import ALERT_SERVICE_KEY
from monitor.alerts.store_tables import AlertTables
from monitor.collector.app import CollectorConfig, build_app
from monitor.collector.backend import DatabaseThreads
from monitor.settings import load_settings
from monitor.store.database import DatabaseUrl
from monitor.store.rows import store_time
from tests.fixtures.alerts import WebhookReceiver


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measurement(number: int, url: str, target_id: str, at: datetime, *,
                blocked: bool) -> dict[str, Any]:
    stamp = at.strftime("%Y%m%dT%H%M%S.%fZ")
    return {
        "measurement_uid": f"{stamp}_KZ_webconnectivity_{number:016x}",
        "report_id": "run-1", "input": url,
        "measurement_start_time": at.strftime("%Y-%m-%d %H:%M:%S"),
        "test_start_time": at.strftime("%Y-%m-%d %H:%M:%S"), "test_runtime": 0.5,
        "probe_cc": "KZ", "probe_asn": "AS9198", "probe_network_name": "JSC Kazakhtelecom",
        "probe_ip": "127.0.0.1", "software_name": "blockmon", "software_version": "0.1.0",
        "test_name": "web_connectivity", "test_version": "0.5.0",
        "data_format_version": "0.2.0",
        "annotations": {"engine_name": "blockmon", "vantage_id": "kz-almaty-1",
                        "target_id": target_id, "list": "briefing"},
        "test_keys": {"blocking": "dns" if blocked else False, "accessible": not blocked,
                      "blocking_method": "dns.nxdomain" if blocked else None,
                      "control_failure": None, "queries": [], "requests": []},
    }


async def test_late_uploads_confirm_blocks_and_silence_is_an_alert(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    settings = load_settings(None, environ={
        "BLOCKMON_ALERTS_ENABLED": "true",
        "BLOCKMON_ALERTS_WEBHOOK_URL": webhook_receiver.url,
        "BLOCKMON_ALERTS_WEBHOOK_SECRET": webhook_receiver.secret,
        "BLOCKMON_ALERTS_CHECK_INTERVAL_SECONDS": "3600",
        "BLOCKMON_SCHEDULE_INTERVAL_MINUTES": "10",
    })
    database = DatabaseThreads(DatabaseUrl.parse(str(tmp_path / "collector.db")))
    database.migrate()
    port = _port()
    app = build_app(CollectorConfig(database=database.url, port=port, settings=settings),
                    database)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    service = app[ALERT_SERVICE_KEY]
    try:
        secret = await database.run(lambda _store, registry: registry.create_enrolment_secret(
            now=datetime.now(UTC)))
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/v1/register", json={
                    "enrolment_secret": secret, "vantage_id": "kz-almaty-1",
                    "probe_cc": "KZ", "probe_asn": "AS9198"}) as response:
                assert response.status == 201
                token = (await response.json())["token"]
            auth = {"Authorization": f"Bearer {token}"}

            # The probe was offline; its spool arrives at once, 50 to 30 minutes late.
            now = datetime.now(UTC).replace(microsecond=0)
            early, blocked_at = now - timedelta(minutes=50), now - timedelta(minutes=30)
            batch = [measurement(1, "https://azattyq.org/", "azattyq", early, blocked=False),
                     measurement(2, "https://example.org/", "control-example", early,
                                 blocked=False)]
            batch += [measurement(10 + n, "https://azattyq.org/", "azattyq",
                                  blocked_at + timedelta(seconds=30 * n), blocked=True)
                      for n in range(3)]
            batch.append(measurement(20, "https://example.org/", "control-example",
                                     blocked_at, blocked=False))
            async with http.post(f"{base}/api/v1/measurements", headers=auth,
                                 json={"measurements": batch[::-1]}) as response:
                assert response.status == 200, await response.text()
            async with http.post(f"{base}/api/v1/check-in", headers=auth, json={}) as response:
                assert response.status == 200
            await service.tick()
            [alert] = [item["body"] for item in webhook_receiver.received]
            assert alert["kind"] == "block_confirmed"
            assert alert["where"][0]["since"] == store_time(blocked_at)
            assert alert["incident"]["opened_at"] == store_time(blocked_at)
            # The collector never got a targets table: name and claim come from the registry.
            assert alert["target"]["name"] == "Azattyq (RFE/RL Kazakh service)"
            assert alert["target"]["briefing"]["section"] == "Internet censorship"
            assert alert["target"]["briefing"]["quote"].startswith("For example, in February")

            # The same batch re-sent (an uploader retry) changes nothing.
            async with http.post(f"{base}/api/v1/measurements", headers=auth,
                                 json={"measurements": batch}) as response:
                assert (await response.json())["stored"] == 0
            await service.tick()
            assert len(webhook_receiver.received) == 1

            # Silence: no check-in nor measurement for more than 2 x 10 minutes.
            old = store_time(now - timedelta(minutes=25))
            await database.run(lambda store, _registry: AlertTables(store).execute(
                "UPDATE probes SET last_seen_at = ?", (old,)))
            await service.tick()
            kinds = [item["body"]["kind"] for item in webhook_receiver.received]
            assert kinds == ["block_confirmed", "probe_silent"]
            assert webhook_receiver.received[1]["body"]["where"][0]["vantage_id"] == \
                "kz-almaty-1"
            async with http.post(f"{base}/api/v1/check-in", headers=auth, json={}) as response:
                assert response.status == 200
            await service.tick()
            kinds = [item["body"]["kind"] for item in webhook_receiver.received]
            assert kinds == ["block_confirmed", "probe_silent", "probe_back"]

            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                metrics = parse_metrics(await response.text())
        blocked = ("blockmon_target_state", frozenset({
            ("vantage", "kz-almaty-1"), ("url", "https://azattyq.org/"), ("state", "blocked")}))
        assert metrics[blocked] == 1
        assert metrics[("blockmon_measurements_total", frozenset({
            ("vantage", "kz-almaty-1"), ("method", "dns.nxdomain")}))] == 3
        assert metrics[("blockmon_alert_deliveries", frozenset({
            ("channel", "webhook"), ("status", "sent")}))] == 3
    finally:
        await runner.cleanup()
        database.close()
