"""The probe's clock against the control helper's `Date` header, seen on every control answer."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

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
    """Collects the skew of each helper answer, handed over by the control client.

        watch = ClockWatch()
        client = ControlClient(on_answer=watch.observe_headers)
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

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """A control answer's headers (names in lower case), as the control client gives them."""
        self.observe(headers.get("date"), time.time())
