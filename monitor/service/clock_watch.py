"""The probe's clock against the control helper's `Date` header, seen on every control answer."""

from __future__ import annotations

import statistics
import time
from collections import deque
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import aiohttp

from monitor.service.round_health import CLOCK_SKEW_LIMIT_SECONDS

__all__ = ["CLOCK_SKEW_LIMIT_SECONDS", "ClockWatch", "clock_skew"]

# Answers remembered; a round reads those that came after it started.
_SAMPLES_KEPT = 1000


def clock_skew(date_header: str | None, local_time: float) -> float | None:
    """Seconds the local clock is ahead of the one that wrote `date_header` (None: no date)."""
    if not date_header:
        return None
    try:
        return local_time - parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class ClockWatch:
    """Collects the skew of each helper answer through an aiohttp trace on the helper session.

        watch = ClockWatch()
        session = aiohttp.ClientSession(trace_configs=[watch.trace_config()])
        ...
        watch.skew_since(round_started)   # median seconds ahead, or None without answers
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=_SAMPLES_KEPT)

    def observe(self, date_header: str | None, local_time: float) -> None:
        skew = clock_skew(date_header, local_time)
        if skew is not None:
            self._samples.append((time.monotonic(), skew))

    def skew_since(self, started: float) -> float | None:
        """The median skew of the answers received since monotonic time `started`."""
        skews = [skew for at, skew in self._samples if at >= started]
        return statistics.median(skews) if skews else None

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def on_request_end(_session: aiohttp.ClientSession, _context: SimpleNamespace,
                                 params: aiohttp.TraceRequestEndParams) -> None:
            self.observe(params.response.headers.get("Date"), time.time())

        trace.on_request_end.append(on_request_end)
        return trace
