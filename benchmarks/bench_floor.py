"""The floor under the engine in Python: the same 2,000 lab pages fetched with nothing but a
connection, a verified TLS handshake and one GET, at concurrency 100, against curl doing the same.

No DNS (the lab's addresses are given, as curl's `resolve` lines give them), no control, no
analysis, no stored JSON: what is left is what any asyncio probe pays per https page on this
machine. `--streams` fetches with asyncio's own streams and TLS instead of probes/connection.py.
Each figure is the CPU of that process (user + system) per page; the lab's is reported too,
since the 2 cores are shared.

    .venv/bin/python benchmarks/bench_floor.py [--streams] [--uvloop] [--no-curl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_measure import bench_urls, cpu_seconds, run_curl, start_lab  # noqa: E402

from lab import LabInfo  # noqa: E402
from probes.connection import open_connection  # noqa: E402
from probes.tls import client_context  # noqa: E402


def request_bytes(url: str) -> bytes:
    parts = urlsplit(url)
    return (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Connection: close\r\nAccept: */*\r\n\r\n").encode("ascii")


def body_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise OSError("the lab's answer has no Content-Length")


async def read_response(read: Callable[[int], Awaitable[bytes]]) -> int:
    """Bytes of one response framed by its Content-Length (the lab's pages all have one): the
    server keeps the connection open after it, as servers may."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await read(65536)
        if not chunk:
            raise OSError("closed before the response's head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    remaining = body_length(head) - len(body)
    while remaining > 0:
        chunk = await read(65536)
        if not chunk:
            raise OSError("closed mid-body")
        remaining -= len(chunk)
    return len(data) + max(remaining, 0)


async def fetch_lean(address: str, url: str, source: str | None, ca_file: str) -> int:
    """One page over probes/connection.py: what the engine's steps do, without the steps."""
    host = urlsplit(url).hostname or ""
    connection = await open_connection(address, 443, limit=256 * 1024,
                                       local_addr=(source, 0) if source else None)
    try:
        await connection.start_tls(client_context(ca_file, "full"), server_hostname=host)
        connection.write(request_bytes(url))
        return await read_response(connection.read)
    finally:
        connection.abort()


async def fetch_streams(address: str, url: str, source: str | None, ca_file: str) -> int:
    """One page over asyncio's streams and TLS layer."""
    host = urlsplit(url).hostname or ""
    reader, writer = await asyncio.open_connection(
        address, 443, ssl=client_context(ca_file, "full"), server_hostname=host,
        local_addr=(source, 0) if source else None)
    try:
        writer.write(request_bytes(url))
        return await read_response(reader.read)
    finally:
        writer.transport.abort()


async def fetch_all(urls: list[str], info: LabInfo, concurrency: int, streams: bool) -> dict:
    fetch = fetch_streams if streams else fetch_lean
    pending = iter(urls)
    fetched, failed = 0, 0

    async def worker() -> None:
        nonlocal fetched, failed
        for url in pending:
            address = info.site_addresses[urlsplit(url).hostname or ""]
            try:
                if await fetch(address, url, info.censored_source, info.ca_file) > 0:
                    fetched += 1
            except OSError:
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"fetched": fetched, "failed": failed, "seconds": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--streams", action="store_true", help="asyncio's streams and TLS layer")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    parser.add_argument("--no-curl", action="store_true", help="skip curl")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_floor: the lab needs root; skipped")
        return 0
    directory = Path(tempfile.mkdtemp(prefix="blockmon-bench-floor-"))
    lab_process, info = start_lab(directory, arguments.sites)
    try:
        urls = bench_urls(arguments.urls, arguments.sites)
        if arguments.uvloop:
            import uvloop  # noqa: PLC0415 - optional: only when asked for

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        client_context(info.ca_file, "full")  # the trust store is loaded once, not per page
        before = cpu_seconds(os.getpid()), cpu_seconds(lab_process.pid)
        outcome = asyncio.run(fetch_all(urls, info, arguments.concurrency, arguments.streams))
        after = cpu_seconds(os.getpid()), cpu_seconds(lab_process.pid)
        pages = max(outcome["fetched"], 1)
        curl = None
        if shutil.which("curl") and not arguments.no_curl:
            curl = run_curl(urls, info, arguments.sites, arguments.concurrency, directory, "fresh",
                            lab_process.pid)
    finally:
        lab_process.terminate()
        lab_process.wait(timeout=15)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "transport": "asyncio streams" if arguments.streams else "probes.connection",
        "event_loop": "uvloop" if arguments.uvloop else "asyncio",
        "pages": outcome["fetched"],
        "failed": outcome["failed"],
        "pages_per_second": round(outcome["fetched"] / outcome["seconds"], 1),
        "cpu_ms_per_page": {"fetcher": round((after[0] - before[0]) * 1000 / pages, 2),
                            "lab": round((after[1] - before[1]) * 1000 / pages, 2)},
        "curl_fresh": curl and {"pages_per_second": round(curl["rate"], 1),
                                "cpu_ms_per_page": curl["cpu_ms_per_page"]},
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
