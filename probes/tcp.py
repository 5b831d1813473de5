"""TCP step: connect to one address, record it as an OONI df-005 entry, hand the connection on."""

from __future__ import annotations

import asyncio
import time

from probes.connection import Connection, open_connection
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.measurement_types import TcpConnect
from probes.options import ProbeOptions

# Bytes a connection buffers before it stops reading the socket (probes/connection.py pauses past
# twice this): a page chunk fits, an endless body does not fill memory.
STREAM_LIMIT = 256 * 1024


def format_endpoint(ip: str, port: int) -> str:
    """OONI's "ip:port", with IPv6 in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def probe_tcp(
    ip: str, port: int, options: ProbeOptions, *, started: float | None = None
) -> tuple[TcpConnect, Connection | None]:
    """Connect within connect_timeout; the open connection is returned so TLS/HTTP reuse it."""
    started = time.monotonic() if started is None else started
    t0 = time.monotonic() - started
    local_addr = (options.source_address, 0) if options.source_address else None
    connection: Connection | None = None
    failure = None
    try:
        # asyncio.timeout, unlike wait_for, runs the connect in this task (no task per step).
        async with asyncio.timeout(options.connect_timeout):
            connection = await open_connection(ip, port, local_addr=local_addr, limit=STREAM_LIMIT)
    except NETWORK_ERRORS as error:
        failure = classify_failure(error)
    entry: TcpConnect = {
        "ip": ip,
        "port": port,
        "status": {"success": failure is None, "failure": failure, "blocked": None},
        "t0": round(t0, 6),
        "t": round(time.monotonic() - started, 6),
    }
    return entry, connection


async def close_connection(connection: Connection | None) -> None:
    """Drop the connection at once; the measurement has what it needs.

    A graceful TLS close waits for the peer's close_notify (about 100 ms at concurrency 100 in
    the benchmark), holding a measurement slot for nothing; a black-holed peer never answers.
    """
    if connection is None:
        return
    connection.abort()
