"""One HTTP/1.1 GET over an open connection with h11, leaving the connection reusable when it can be."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import h11

from probes.tcp import Streams
from probes.throughput import ThroughputProfile, ThroughputRecorder

_READ_SIZE = 65536
# As the probe's HTTP step: a response head may be this long (many cookies, a long CSP).
_MAX_RESPONSE_HEAD = 256 * 1024


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
    streams: Streams,
    target: str,
    headers: list[tuple[str, str]],
    body_limit: int,
    counting: CountingBudget | None = None,
) -> Exchange:
    """Send GET `target` and read the response; network and protocol errors propagate.

    An EOF before the response is complete raises EOFError, as aiohttp's ServerDisconnectedError
    and ClientPayloadError did (both classify as eof_error).
    """
    return await exchange(streams, "GET", target, headers, body_limit, counting=counting)


async def exchange(
    streams: Streams,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body_limit: int,
    *,
    body: bytes = b"",
    counting: CountingBudget | None = None,
) -> Exchange:
    """One request (`body` sent with it, headers to say its length) and its response, as exchange_get."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_RESPONSE_HEAD)
    request = h11.Request(method=method, target=target, headers=headers)
    message = connection.send(request)
    if body:
        message += connection.send(h11.Data(data=body))
    streams.write(message + connection.send(h11.EndOfMessage()))
    await streams.drain()
    response: h11.Response | None = None
    recorder: ThroughputRecorder | None = None
    received = bytearray()
    eof_seen = False
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as error:
            if eof_seen:
                # A peer closing mid-message makes h11 complain about the protocol: an early EOF.
                raise EOFError("connection closed before the response was complete") from error
            raise
        if event is h11.NEED_DATA:
            data = await streams.read(_READ_SIZE)
            if not data:
                if response is None:
                    raise EOFError("connection closed before a response")
                eof_seen = True  # a body read until close ends here; h11 says whether it may
            connection.receive_data(data)
        elif isinstance(event, h11.Response):
            response = event
            recorder = ThroughputRecorder(time.monotonic())
        elif isinstance(event, h11.Data):
            assert recorder is not None, "h11 gives the response before its body"
            recorder.add(time.monotonic(), len(event.data))
            received += event.data
            if len(received) > body_limit:
                ended_by = "bytes"
                if counting is not None:
                    ended_by = await _count_on(connection, streams, recorder, counting)
                profile = recorder.profile(time.monotonic(), ended_by)
                return _exchange(response, received[:body_limit], truncated=True, reusable=False,
                                 throughput=profile)
        elif isinstance(event, h11.EndOfMessage):
            reusable = connection.our_state is h11.DONE and connection.their_state is h11.DONE
            whole = recorder.profile(time.monotonic(), "eof") if recorder else None
            return _exchange(response, received, truncated=False, reusable=reusable,
                             throughput=whole)
        elif isinstance(event, h11.ConnectionClosed):
            raise EOFError("connection closed before the response was complete")
        # InformationalResponse (1xx): the final response follows.


async def _count_on(connection: h11.Connection, streams: Streams,
                    recorder: ThroughputRecorder, budget: CountingBudget) -> str:
    """Read the rest of the body only counting it, within the budget; how the count ended."""
    remaining = max(budget.max_seconds - recorder.elapsed(time.monotonic()), 0.0)
    try:
        async with asyncio.timeout(remaining):
            while recorder.total < budget.max_bytes:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await streams.read(_READ_SIZE)
                    if not data:
                        return "eof"
                    connection.receive_data(data)
                elif isinstance(event, h11.Data):
                    recorder.add(time.monotonic(), len(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return "eof"
    except TimeoutError:
        return "seconds"
    except (h11.RemoteProtocolError, OSError):
        return "eof"  # the count so far still gives a rate; the page itself was read
    return "bytes"


def _exchange(response: h11.Response | None, body: bytearray, *, truncated: bool, reusable: bool,
              throughput: ThroughputProfile | None) -> Exchange:
    assert response is not None, "h11 gives the response before its body"
    # Decoded as aiohttp decodes them (UTF-8, undecodable bytes kept as escapes), names as sent.
    headers = [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in response.headers.raw_items()
    ]
    return Exchange(response.status_code, headers, bytes(body), truncated, reusable, throughput)
