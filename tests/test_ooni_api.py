"""`blockmon ooni import --api`: a loopback stand-in of OONI's measurement API, paged."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from monitor.cli import cli
from monitor.ooni.api import ApiQuery
from tests.conftest import SHARED

REAL = SHARED / "data" / "ooni-real" / "measurements.jsonl"


class FakeOoniApi:
    """/api/v1/measurements as api.ooni.io answers it (results + metadata.next_url, 5 a page),
    /api/v1/raw_measurement?measurement_uid= for each; records every request it got."""

    def __init__(self, measurements: list[dict], *, fail_page: int | None = None) -> None:
        self.measurements = measurements
        self.fail_page = fail_page
        self.requests: list[str] = []
        self.base = ""

    async def list_page(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        offset = int(request.query.get("offset", "0"))
        page_size = 5
        if self.fail_page is not None and offset // page_size == self.fail_page:
            self.fail_page = None  # fails once, as a flaky API does
            return web.json_response({"error": "overloaded"}, status=503)
        chosen = [m for m in self.measurements
                  if m.get("probe_cc") == request.query.get("probe_cc", m.get("probe_cc"))]
        window = chosen[offset:offset + page_size]
        next_offset = offset + page_size
        query = {**request.query, "offset": str(next_offset)}
        next_url = (f"{self.base}/api/v1/measurements?" + "&".join(f"{k}={v}" for k, v in query.items())
                    if next_offset < len(chosen) else None)
        return web.json_response({
            "metadata": {"count": len(chosen), "current_page": offset // page_size + 1,
                         "limit": page_size, "next_url": next_url, "offset": offset,
                         "pages": -(-len(chosen) // page_size), "query_time": 0.01},
            "results": [{
                "anomaly": False, "confirmed": False, "failure": False, "input": m["input"],
                "measurement_start_time": m["measurement_start_time"],
                "measurement_uid": m["measurement_uid"],
                "measurement_url": f"{self.base}/api/v1/raw_measurement?measurement_uid={m['measurement_uid']}",
                "probe_asn": m["probe_asn"], "probe_cc": m["probe_cc"], "report_id": m.get("report_id"),
                "scores": {}, "test_name": "web_connectivity"} for m in window]})

    async def raw(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        uid = request.query["measurement_uid"]
        for measurement in self.measurements:
            if measurement["measurement_uid"] == uid:
                return web.json_response(measurement)
        return web.json_response({"error": "not found"}, status=404)


@pytest.fixture
def measurements() -> list[dict]:
    if not REAL.exists():
        pytest.skip(f"{REAL} is absent (the shared data sits beside the checkout)")
    loaded = [json.loads(line) for line in REAL.read_text(encoding="utf-8").splitlines()]
    for number, measurement in enumerate(loaded):
        # The API lists every measurement by uid; old files lack one.
        measurement["measurement_uid"] = measurement.get("measurement_uid") or f"2020test{number:02d}"
    return loaded


async def serve(api: FakeOoniApi) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/api/v1/measurements", api.list_page)
    app.router.add_get("/api/v1/raw_measurement", api.raw)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.base = f"http://127.0.0.1:{port}"
    return runner


def invoke(tmp_path: Path, *args: str):
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "bm.db"}"\n'
                      '[ooni]\napi_interval_seconds = 0.0\n', encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config), "ooni", "import", *args])


def stored(tmp_path: Path) -> int:
    connection = sqlite3.connect(tmp_path / "bm.db")
    try:
        return connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    finally:
        connection.close()


async def test_import_from_the_api_follows_next_url_pages(measurements, tmp_path):
    api = FakeOoniApi(measurements)
    runner = await serve(api)
    try:
        result = await asyncio.to_thread(invoke, tmp_path, "--api", api.base, "--since",
                                         "2015-01-01", "--until", "2026-01-01")
    finally:
        await runner.cleanup()
    assert result.exit_code == 0, result.output
    assert "24 measurements read: 24 stored" in result.output
    pages = [r for r in api.requests if r.startswith("/api/v1/measurements")]
    assert len(pages) == 5  # 24 measurements, 5 a page
    assert "test_name=web_connectivity" in pages[0] and "since=2015-01-01" in pages[0]
    assert [r for r in api.requests if r.startswith("/api/v1/raw_measurement")].__len__() == 24
    assert stored(tmp_path) == 24


async def test_an_interrupted_api_import_resumes_at_its_page(measurements, tmp_path):
    api = FakeOoniApi(measurements, fail_page=2)
    runner = await serve(api)
    cursor = tmp_path / "cursor.json"
    try:
        first = await asyncio.to_thread(invoke, tmp_path, "--api", api.base, "--cursor", str(cursor))
        assert first.exit_code == 1
        assert "HTTP 503" in first.output and "resume" in first.output
        assert stored(tmp_path) == 10 and cursor.exists()
        api.requests.clear()
        second = await asyncio.to_thread(invoke, tmp_path, "--api", api.base, "--cursor", str(cursor))
    finally:
        await runner.cleanup()
    assert second.exit_code == 0, second.output
    assert "offset=10" in api.requests[0]  # straight to the page that failed
    assert "14 measurements read: 14 stored" in second.output
    assert stored(tmp_path) == 24 and not cursor.exists()


async def test_the_api_filters_and_limit_are_sent(measurements, tmp_path):
    api = FakeOoniApi(measurements)
    runner = await serve(api)
    try:
        result = await asyncio.to_thread(invoke, tmp_path, "--api", api.base, "--probe-cc", "IR",
                                         "--limit", "2")
    finally:
        await runner.cleanup()
    assert result.exit_code == 0, result.output
    assert "probe_cc=IR" in api.requests[0]
    assert "2 measurements read: 2 stored" in result.output


def test_each_url_and_domain_filter_is_its_own_query():
    urls = ApiQuery(probe_cc="KZ", inputs=("https://fergana.agency/",),
                    domains=("fergananews.com",)).list_urls("https://api.example.org/")
    assert urls == [
        "https://api.example.org/api/v1/measurements?test_name=web_connectivity&limit=100"
        "&order_by=measurement_start_time&order=asc&probe_cc=KZ&input=https%3A%2F%2Ffergana.agency%2F",
        "https://api.example.org/api/v1/measurements?test_name=web_connectivity&limit=100"
        "&order_by=measurement_start_time&order=asc&probe_cc=KZ&domain=fergananews.com",
    ]
