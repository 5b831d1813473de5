"""Real headless Chromium against `blockmon serve`: filter, target page, screenshots for the docs.

Chromium is driven over the DevTools protocol (its websocket, with aiohttp). The test's own
screenshots go to its temporary folder; the ones in docs/screenshots/ come from the demo
(`python -m tests.demo_screenshots`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.store import open_store
from reports.periods import parse_period
from reports.write import generate_report
from tests.conftest import PROJECT_ROOT
from tests.fixtures.reports import REPORT_TARGETS, HistoryStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Seconds for any one page step; generous because the machine is shared.
STEP_TIMEOUT = 30.0
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--no-proxy-server",
    # Nothing but loopback resolves: the browser cannot reach out even by mistake.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"blockmon serve exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"blockmon serve did not listen on {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    # The process group is the one this test started (start_new_session), chromium's helpers too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def dashboard_url(history_store: HistoryStore, tmp_path: Path) -> Iterator[str]:
    out_dir = tmp_path / "reports"
    store = open_store(history_store.url, migrate=False)
    try:
        # A fixed "generated at": the screenshot only changes when the report does.
        generate_report(store, parse_period("2026-11"), out_dir, ("html",),
                        targets=list(REPORT_TARGETS), now=datetime(2026, 12, 1, 0, 40, tzinfo=UTC))
    finally:
        store.close()
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "{history_store.url}"\n'
                      f'[reports]\nout_dir = "{out_dir}"\n', encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "blockmon"), "--config", str(config), "serve",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


class DevTools:
    """A minimal Chrome DevTools protocol client: one page session over the browser socket."""

    def __init__(self, socket_: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket_
        self.ids = itertools.count(1)
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self.socket.send_str(json.dumps(message))
        while True:
            reply = await asyncio.wait_for(self.socket.receive_json(), STEP_TIMEOUT)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    async def wait_for_event(self, method: str) -> None:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return
            self.events.append(await asyncio.wait_for(self.socket.receive_json(), STEP_TIMEOUT))

    async def open(self, url: str) -> None:
        self.events.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_for_event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self, path: Path, max_height: int = 2000) -> None:
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(size["height"], max_height),
                "scale": 1}
        shot = await self.call("Page.captureScreenshot", format="png", clip=clip,
                               captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
         "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        address = None
        deadline = time.monotonic() + STEP_TIMEOUT
        assert process.stderr is not None
        while address is None and time.monotonic() < deadline:
            line = await asyncio.to_thread(process.stderr.readline)
            if not line:
                raise AssertionError("chromium exited before opening its DevTools socket")
            if match := re.search(rb"DevTools listening on (ws://\S+)", line):
                address = match[1].decode()
        assert address, "chromium did not print its DevTools address"
        async with aiohttp.ClientSession() as session, session.ws_connect(
                address, max_msg_size=64 * 1024 * 1024) as websocket:
            tools = DevTools(websocket)
            target = await tools.call("Target.createTarget", url="about:blank")
            attached = await tools.call("Target.attachToTarget", targetId=target["targetId"],
                                        flatten=True)
            tools.session = attached["sessionId"]
            await tools.call("Page.enable")
            await tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=1000,
                             deviceScaleFactor=1, mobile=False)
            yield tools
    finally:
        stop(process)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
async def test_dashboard_in_a_real_browser(dashboard_url: str, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    async with chromium(tmp_path) as browser:
        await browser.open(f"{dashboard_url}/")
        assert await browser.evaluate("document.querySelectorAll('#states tbody tr').length") == 10
        await browser.screenshot(shots / "dashboard.png")

        # Choosing a state submits the filter form by itself (dashboard.js).
        browser.events.clear()
        await browser.evaluate("""(() => { const s = document.querySelector('select[name=state]');
            s.value = 'blocked'; s.dispatchEvent(new Event('change')); })()""")
        await browser.wait_for_event("Page.loadEventFired")
        assert await browser.evaluate("location.search") == "?list=&category=&asn=&state=blocked&method="
        states = await browser.evaluate(
            "[...document.querySelectorAll('#states tbody tr')].map(r => r.dataset.state)")
        assert states == ["blocked", "blocked"]

        # The quick search hides rows without reloading.
        hidden = await browser.evaluate("""(() => { const q = document.getElementById('quick-search');
            q.value = 'beeline'; q.dispatchEvent(new Event('input'));
            return document.querySelectorAll('#states tbody tr.hidden').length; })()""")
        assert hidden == 1

        browser.events.clear()
        await browser.evaluate("document.querySelector('#states a').click()")
        await browser.wait_for_event("Page.loadEventFired")
        assert await browser.evaluate("location.pathname") == "/targets/blockednews"
        heading = await browser.evaluate("document.querySelector('h1').textContent")
        assert heading.startswith("Blocked News")
        assert await browser.evaluate("document.querySelectorAll('svg').length") == 4
        await browser.screenshot(shots / "dashboard-target.png")

        await browser.open(f"{dashboard_url}/reports/2026-11/report.html")
        title = await browser.evaluate("document.querySelector('h1').textContent")
        assert title == "blockmon report: 2026-11"
        await browser.screenshot(shots / "report.png", max_height=2400)

    for name in ("dashboard.png", "dashboard-target.png", "report.png"):
        assert (shots / name).read_bytes().startswith(b"\x89PNG")


# What the layout test measures in the page (DOM geometry, not by eye): the page must not scroll
# sideways; no element outside a scrolling box may reach past the viewport; no box that clips
# (overflow hidden / text-overflow) may hide text; an SVG label must lie inside its SVG and be
# whole or end with an ellipsis; a URL in a table cell takes at most two lines.
LAYOUT_PROBLEMS_JS = r"""(() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '') +
    ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; }
    return false; };
  if (document.documentElement.scrollWidth > width + 1)
    problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + width);
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    if (!scrolls(el) && (box.right > width + 1 || box.left < -1))
      problems.push('past the page (' + Math.round(box.left) + '..' + Math.round(box.right) +
                    ' of ' + width + '): ' + name(el));
    const style = getComputedStyle(el);
    if ((style.overflowX === 'hidden' || style.textOverflow === 'ellipsis') &&
        el.scrollWidth > el.clientWidth + 1) problems.push('text cut: ' + name(el));
  }
  for (const text of document.querySelectorAll('svg text')) {
    const svg = text.ownerSVGElement.getBoundingClientRect(), box = text.getBoundingClientRect();
    if (box.left < svg.left - 1 || box.right > svg.right + 1)
      problems.push('SVG label outside its chart: ' + text.textContent);
    const title = text.querySelector('title');
    const shown = [...text.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('');
    if (title && shown !== title.textContent && !shown.endsWith('\u2026'))
      problems.push('SVG label cut without an ellipsis: ' + shown);
  }
  for (const code of document.querySelectorAll('td code')) {
    if (/^https?:/.test(code.textContent) && code.getClientRects().length > 2)
      problems.push('URL wraps over ' + code.getClientRects().length + ' lines: ' + code.textContent);
  }
  return problems;
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
async def test_pages_fit_the_screen_on_a_desktop_and_a_phone(dashboard_url: str,
                                                             tmp_path: Path) -> None:
    # Finding 8 (issue 15): claim tables past their card, labels cut, URLs over three lines.
    async with chromium(tmp_path) as browser:
        await browser.open(f"{dashboard_url}/api/v1/states?state=blocked")
        uid = json.loads(await browser.evaluate("document.body.innerText"))["states"][0][
            "last_uid"]
        pages = ("/", "/targets/blockednews", f"/measurements/{uid}",
                 "/reports/2026-11/report.html")
        found: dict[str, list[str]] = {}
        for width, mobile in ((1400, False), (390, True)):
            await browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                               deviceScaleFactor=1, mobile=mobile)
            for page in pages:
                await browser.open(f"{dashboard_url}{page}")
                problems = await browser.evaluate(LAYOUT_PROBLEMS_JS)
                if problems:
                    found[f"{page} at {width} px"] = problems[:8]
        assert await browser.evaluate("document.querySelectorAll('svg text').length") > 0
    assert found == {}
