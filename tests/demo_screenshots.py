"""Regenerates docs/screenshots/ from a `blockmon demo` data dir, in real headless Chromium.

    .venv/bin/blockmon demo --data-dir demo-data
    .venv/bin/blockmon --config demo-data/blockmon.toml report --period YYYY-MM
    .venv/bin/python -m tests.demo_screenshots demo-data YYYY-MM

Not a test: the pictures in the docs show the demo's own data, not a fixture's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.test_browser import SCREENSHOTS, chromium, free_port, stop, wait_for_port


async def take_screenshots(data_dir: Path, label: str) -> list[Path]:
    config = data_dir / "blockmon.toml"
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "blockmon"), "--config", str(config), "serve",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    written = []
    try:
        wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as profile:
            async with chromium(Path(profile)) as browser:
                await browser.open(f"{base}/api/v1/states?state=blocked&method=tls.mitm")
                uid = json.loads(await browser.evaluate("document.body.innerText"))[
                    "states"][0]["last_uid"]
                for name, page, height in (
                        ("dashboard.png", "/", 2000),
                        ("dashboard-target.png", "/targets/eurasianet", 2000),
                        ("measurement.png", f"/measurements/{uid}", 2000),
                        ("report.png", f"/reports/{label}/report.html", 2400),
                        ("demo-report.png", f"/reports/{label}/report.html", 4000)):
                    await browser.open(f"{base}{page}")
                    await browser.screenshot(SCREENSHOTS / name, max_height=height)
                    written.append(SCREENSHOTS / name)
    finally:
        stop(process)
    return written


if __name__ == "__main__":
    for path in asyncio.run(take_screenshots(Path(sys.argv[1]), sys.argv[2])):
        print(path)
