"""Prometheus /metrics: the exposition text, and a real scrape of `blockmon run`'s listener."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp

from monitor.alerts.metrics import (
    MetricsSnapshot,
    parse_metrics,
    read_snapshot,
    render_metrics,
)
from monitor.alerts.service import serve_metrics


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_rendering_escapes_label_values_and_declares_each_family() -> None:
    snapshot = MetricsSnapshot(
        states=[{"vantage_id": "kz-1", "url": 'https://x.kz/?q="a"\\b', "state": "blocked"}],
        spool_backlog=7)
    text = render_metrics(snapshot)
    assert '# TYPE blockmon_target_state gauge' in text
    assert 'url="https://x.kz/?q=\\"a\\"\\\\b"' in text
    parsed = parse_metrics(text)
    url = 'https://x.kz/?q="a"\\b'
    assert parsed[("blockmon_target_state", labels(vantage="kz-1", url=url,
                                                   state="blocked"))] == 1
    assert parsed[("blockmon_target_state", labels(vantage="kz-1", url=url,
                                                   state="accessible"))] == 0
    assert parsed[("blockmon_spool_backlog", frozenset())] == 7
    for family in ("blockmon_measurements_total", "blockmon_alert_deliveries",
                   "blockmon_alerts_total", "blockmon_incidents_open"):
        assert f"# HELP {family} " in text


def test_label_values_read_back_exactly() -> None:
    # A backslash followed by "n" is two characters, not a line break; and the reverse.
    urls = ["https://x.kz/a\\nb", "https://x.kz/a\nb", 'https://x.kz/\\"', "https://x.kz/\\\\"]
    text = render_metrics(MetricsSnapshot(
        states=[{"vantage_id": "kz-1", "url": url, "state": "down"} for url in urls]))
    parsed = parse_metrics(text)
    read = {dict(pairs)["url"] for (name, pairs) in parsed if name == "blockmon_target_state"}
    assert read == set(urls)


async def test_a_scrape_of_the_monitor_listener_shows_the_store(
        sqlite_store: Any, feed_store: Callable[..., str]) -> None:
    for second in (0, 10, 20):
        feed_store(sqlite_store, url="https://azattyq.org/", target_id="azattyq",
                   measured_at=f"2026-11-25 18:00:{second:02d}", blocking="dns",
                   accessible=False, blocking_method="dns.nxdomain")
    feed_store(sqlite_store, url="https://kloop.kg/", target_id="kloop",
               measured_at="2026-11-25 18:00:00", blocking="tcp_ip", accessible=False,
               blocking_method="tcp.reset")
    feed_store(sqlite_store, url="https://example.org/", target_id="control-example",
               measured_at="2026-11-25 18:00:00", vantage_id="kz-astana-2")

    async def fetch() -> MetricsSnapshot:
        return read_snapshot(sqlite_store)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = await serve_metrics(f"127.0.0.1:{port}", fetch)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                parsed = parse_metrics(await response.text())
    finally:
        await runner.cleanup()
    state = "blockmon_target_state"
    assert parsed[(state, labels(vantage="kz-almaty-1", url="https://azattyq.org/",
                                 state="blocked"))] == 1
    assert parsed[(state, labels(vantage="kz-almaty-1", url="https://kloop.kg/",
                                 state="anomaly"))] == 1
    assert parsed[(state, labels(vantage="kz-astana-2", url="https://example.org/",
                                 state="accessible"))] == 1
    total = "blockmon_measurements_total"
    assert parsed[(total, labels(vantage="kz-almaty-1", method="dns.nxdomain"))] == 3
    assert parsed[(total, labels(vantage="kz-almaty-1", method="tcp.reset"))] == 1
    assert parsed[(total, labels(vantage="kz-astana-2", method=""))] == 1
    # The store fixture spools every new measurement (as a probe with a collector does).
    assert parsed[("blockmon_spool_backlog", frozenset())] == 5


async def test_metrics_listen_takes_a_bracketed_ipv6_address() -> None:
    # [alerts] metrics_listen accepts "[::1]:9470" (HOST:PORT), as `blockmon serve` does.
    async def fetch() -> MetricsSnapshot:
        return MetricsSnapshot(spool_backlog=3)

    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
    runner = await serve_metrics(f"[::1]:{port}", fetch)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://[::1]:{port}/metrics") as response:
                parsed = parse_metrics(await response.text())
    finally:
        await runner.cleanup()
    assert parsed[("blockmon_spool_backlog", frozenset())] == 3
