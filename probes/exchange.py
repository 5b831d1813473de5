"""One HTTP/1.1 GET (or POST) over an open connection, leaving the connection reusable when it can be."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import h11

from probes.connection import Connection
from probes.http_stream import ResponseStream
from probes.http_wire import ResponseHead
from probes.throughput import ThroughputProfile, ThroughputRecorder


@dataclass(slots=True)
class Exchange:
    """The response to one GET: status, headers as sent, the body up to the limit."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    body_is_truncated: bool
    # Both sides finished the message and nobody asked to close: the connection can serve again.
    reusable: bool
    # How the body arrived (docs/measurement-format.md, "x_throughput"), from the response head on.
    throughput: ThroughputProfile | None = None


@dataclass(frozen=True, slots=True)
class CountingBudget:
    """Past the body limit, read on and only count, to this many bytes or seconds in all."""

    max_bytes: int
    max_seconds: float


async def exchange_get(
    connection: Connection,
    target: str,
    headers: list[tuple[str, str]],
    body_limit: int,
    counting: CountingBudget | None = None,
) -> Exchange:
    """Send GET `target` and read the response; network and protocol errors propagate.

    An EOF before the response is complete raises EOFError, as aiohttp's ServerDisconnectedError
    and ClientPayloadError did (both classify as eof_error).
    """
    return await exchange(connection, "GET", target, headers, body_limit, counting=counting)


async def exchange(
    connection: Connection,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body_limit: int,
    *,
    body: bytes = b"",
    counting: CountingBudget | None = None,
) -> Exchange:
    """One request (`body` sent with it, headers to say its length) and its response, as exchange_get."""
    stream = ResponseStream(connection, method, target, headers, body)
    await stream.send()
    head = await stream.head()
    recorder = ThroughputRecorder(time.monotonic())
    received = bytearray()
    while (data := await stream.chunk()) is not None:
        recorder.add(time.monotonic(), len(data))
        received += data
        if len(received) > body_limit:
            ended_by = "bytes"
            if counting is not None:
                ended_by = await _count_on(stream, recorder, counting)
            profile = recorder.profile(time.monotonic(), ended_by)
            return _exchange(head, received[:body_limit], truncated=True, reusable=False, throughput=profile)
    whole = recorder.profile(time.monotonic(), "eof")
    return _exchange(head, received, truncated=False, reusable=stream.reusable, throughput=whole)


async def _count_on(stream: ResponseStream, recorder: ThroughputRecorder, budget: CountingBudget) -> str:
    """Read the rest of the body only counting it, within the budget; how the count ended."""
    remaining = max(budget.max_seconds - recorder.elapsed(time.monotonic()), 0.0)
    try:
        async with asyncio.timeout(remaining):
            while recorder.total < budget.max_bytes:
                data = await stream.chunk()
                if data is None:
                    return "eof"
                recorder.add(time.monotonic(), len(data))
    except TimeoutError:
        return "seconds"
    except (h11.RemoteProtocolError, OSError, EOFError):
        return "eof"  # the count so far still gives a rate; the page itself was read
    return "bytes"


def _exchange(head: ResponseHead, body: bytearray, *, truncated: bool, reusable: bool,
              throughput: ThroughputProfile | None) -> Exchange:
    # Decoded as aiohttp decodes them (UTF-8, undecodable bytes kept as escapes), names as sent.
    headers = [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in head.headers
    ]
    return Exchange(head.status, headers, bytes(body), truncated, reusable, throughput)
