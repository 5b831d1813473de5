"""The per-round clock check: a control helper whose `Date` header is an hour off makes the round
`degraded` with the reason; real lab sites, the real helper behind a real loopback proxy."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from monitor.cli import cli
from monitor.service.clock_watch import clock_skew
from monitor.service.round_health import CLOCK_SKEW_LIMIT_SECONDS, RoundEvidence, degraded_reason
from tests.fixtures.runner import write_lab_config, write_lab_registry
from tests.test_round_health import runs

HOUR = 3600.0


def test_the_skew_is_read_from_a_date_header() -> None:
    now = time.time()
    skew = clock_skew(formatdate(now - HOUR, usegmt=True), now)
    assert skew is not None and HOUR <= skew < HOUR + 1  # the header is to the second
    assert clock_skew(None, now) is None
    assert clock_skew("not a date", now) is None


def test_a_skew_beyond_the_bound_is_a_reason_and_one_within_is_not() -> None:
    evidence = RoundEvidence(helper_configured=True, clock_skew_seconds=CLOCK_SKEW_LIMIT_SECONDS)
    assert degraded_reason(evidence) is None
    evidence.clock_skew_seconds = -HOUR
    assert degraded_reason(evidence) == (
        "clock 3600 s behind the control helper's (more than 120 s): measurement times are "
        "wrong; set the clock (NTP)")


@pytest.fixture
def skewed_helper(helper_url: str) -> Iterator[str]:
    """A loopback proxy to the real helper whose answers carry a `Date` an hour in the past
    (as from a helper, or a probe, whose clock is off)."""
    ready = threading.Event()
    address: list[str] = []
    loop = asyncio.new_event_loop()

    async def forward(request: web.Request) -> web.Response:
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as session, session.post(
                helper_url, data=await request.read(), headers=headers) as reply:
            body = await reply.read()
            return web.Response(body=body, status=reply.status,
                                content_type=reply.content_type,
                                headers={"Date": formatdate(time.time() - HOUR, usegmt=True)})

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        address.append(f"http://127.0.0.1:{port}/")
        ready.set()
        return runner

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(serve(), loop)
    assert ready.wait(30)
    yield address[0]
    asyncio.run_coroutine_threadsafe(started.result().cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def test_a_helper_an_hour_off_makes_the_round_degraded(tmp_path: Path, lab_info,
                                                       skewed_helper: str) -> None:
    registry = write_lab_registry(tmp_path / "registry.toml", "lab",
                                  {"honest": ["https://ok.lab.test/"]})
    config = write_lab_config(tmp_path, lab_info, registry, "lab", helper_url=skewed_helper,
                              extra="[schedule]\nconfirm_retests = 0\n")

    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], obj={})

    assert result.exit_code == 3, result.output
    # 3600 s, plus up to a second as the header is to the second, plus the proxy's latency.
    reason = re.compile(r"clock 360[012] s ahead of the control helper's \(more than 120 s\)")
    [line] = [line for line in result.stderr.splitlines() if "degraded" in line]
    assert line.startswith("round over lab degraded: ") and reason.search(line), line
    [(status, stored_reason)] = runs(tmp_path / "data" / "blockmon.db")
    assert status == "degraded" and reason.match(stored_reason), stored_reason
