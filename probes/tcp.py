"""TCP step: connect to one address, record it as an OONI df-005 entry, hand the streams on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from probes.errors import NETWORK_ERRORS, classify_failure
from probes.options import ProbeOptions

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# Large enough for one h11 read of a typical page chunk; asyncio's default is 64 KiB.
STREAM_LIMIT = 256 * 1024


def format_endpoint(ip: str, port: int) -> str:
    """OONI's "ip:port", with IPv6 in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def probe_tcp(
    ip: str, port: int, options: ProbeOptions, *, started: float | None = None
) -> tuple[dict[str, Any], Streams | None]:
    """Connect within connect_timeout; the open streams are returned so TLS/HTTP reuse them."""
    started = time.monotonic() if started is None else started
    t0 = time.monotonic() - started
    local_addr = (options.source_address, 0) if options.source_address else None
    streams: Streams | None = None
    failure = None
    try:
        streams = await asyncio.wait_for(
            asyncio.open_connection(ip, port, local_addr=local_addr, limit=STREAM_LIMIT),
            timeout=options.connect_timeout,
        )
    except NETWORK_ERRORS as error:
        failure = classify_failure(error)
    entry = {
        "ip": ip,
        "port": port,
        "status": {"success": failure is None, "failure": failure, "blocked": None},
        "t0": round(t0, 6),
        "t": round(time.monotonic() - started, 6),
    }
    return entry, streams


async def close_streams(streams: Streams | None) -> None:
    """Close without waiting on a peer that may never answer (a black-holed connection)."""
    if streams is None:
        return
    writer = streams[1]
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
    except NETWORK_ERRORS:
        pass
