"""Throughput profiles of a body read: bytes over time, time to first byte, rate; pure."""

from __future__ import annotations

from typing import TypedDict

# A profile keeps this many (seconds, bytes) points, evenly spread over the read: enough for a
# small chart and to see a stall, little enough to store on every measurement.
SAMPLE_POINTS = 8
# What the control helper reads past its body cap, only counting, for its rate.
CONTROL_THROUGHPUT_BYTES = 2 * 1024 * 1024
CONTROL_THROUGHPUT_SECONDS = 5.0


class ThroughputProfile(TypedDict):
    """How a body arrived (docs/measurement-format.md, `x_throughput`); seconds from the request."""

    bytes: int
    seconds: float
    time_to_first_byte: float | None
    # Bytes per second over the body from its first block to its last (to the cut, when a budget
    # or a timeout ended the read); None below two blocks.
    rate: float | None
    rate_bytes: int
    # Why the read stopped: "eof" (the whole body), "bytes" or "seconds" (the budget), "failure".
    ended_by: str
    # A few points of the read: seconds since the request, and bytes received by then.
    sample_seconds: list[float]
    sample_bytes: list[int]


class BaselineEntry(TypedDict):
    """One baseline fetch: a neutral URL on the same network, or the target's address with a
    neutral SNI (`kind` "url" or "neutral_sni")."""

    kind: str
    url: str
    address: str
    server_name: str | None
    failure: str | None
    tls_handshake_seconds: float | None
    profile: ThroughputProfile | None


class ThroughputKeys(TypedDict):
    """test_keys.x_throughput (docs/measurement-format.md): the rates throttling is judged on."""

    url: str
    probe: ThroughputProfile | None
    control: ThroughputProfile | None
    tls_handshake_seconds: float | None
    baseline: list[BaselineEntry]


class ThroughputRecorder:
    """Fed each block of a body as it arrives (`add`), then asked for the profile (`profile`)."""

    __slots__ = ("_started", "_points", "_total")

    def __init__(self, started: float) -> None:
        self._started = started
        self._points: list[tuple[float, int]] = []
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def add(self, now: float, size: int) -> None:
        if size <= 0:
            return
        self._total += size
        self._points.append((now - self._started, self._total))

    def elapsed(self, now: float) -> float:
        return now - self._started

    def profile(self, now: float, ended_by: str) -> ThroughputProfile:
        return build_profile(self._points, now - self._started, ended_by)


def build_profile(points: list[tuple[float, int]], seconds: float, ended_by: str) -> ThroughputProfile:
    """The profile of a read from its (seconds since the request, bytes so far) points."""
    first = points[0] if points else None
    samples = sample_points(points)
    return {
        "bytes": points[-1][1] if points else 0,
        "seconds": round(seconds, 6),
        "time_to_first_byte": round(first[0], 6) if first else None,
        "rate": body_rate(points, points[-1][0] if ended_by == "eof" and points else seconds),
        "rate_bytes": points[-1][1] - points[0][1] if len(points) > 1 else 0,
        "ended_by": ended_by,
        "sample_seconds": [round(t, 4) for t, _ in samples],
        "sample_bytes": [total for _, total in samples],
    }


def body_rate(points: list[tuple[float, int]], end: float) -> float | None:
    """Bytes per second after the first block, up to `end`: the first block says when bytes began,
    not how fast they came (it may be a buffer the server filled at once); and a read cut by its
    budget or a timeout counts the silence before the cut, which is part of a slow rate."""
    if len(points) < 2:
        return None
    (t0, b0), (_, b1) = points[0], points[-1]
    if end <= t0:
        return None
    return round((b1 - b0) / (end - t0), 1)


def sample_points(points: list[tuple[float, int]], count: int = SAMPLE_POINTS) -> list[tuple[float, int]]:
    """At most `count` points, the first and the last always among them."""
    if len(points) <= count:
        return list(points)
    step = (len(points) - 1) / (count - 1)
    return [points[round(index * step)] for index in range(count)]
