"""How `blockmon ooni import` shows progress: a redrawn line on a terminal, periodic lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"


def progress_text(count: int, seconds: float, place: str) -> str:
    """'1500 measurements read, 750/s, day.jsonl.gz:1500' (the rate once time has passed)."""
    rate = f", {count / seconds:.0f}/s" if seconds > 0 else ""
    return f"{count} measurements read{rate}, {place}"


class ImportProgress:
    """Counts measurements read; on a terminal redraws one line (at most every `redraw_seconds`),
    elsewhere (a log, a pipe) writes one line every `every` measurements."""

    def __init__(self, stream: TextIO, *, is_tty: bool | None = None, every: int = 500,
                 redraw_seconds: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.every = every
        self.redraw_seconds = redraw_seconds
        self.clock = clock
        self.count = 0
        self._place = ""
        self._started = clock()
        self._drawn_at: float | None = None  # when the terminal line was last drawn

    def read(self, place: str) -> None:
        """One more measurement read, at `place` ("path:line" or the API's URL)."""
        self.count += 1
        self._place = place
        now = self.clock()
        if self.is_tty:
            if self._drawn_at is not None and now - self._drawn_at < self.redraw_seconds:
                return
            self._drawn_at = now
            self.stream.write(CLEAR_LINE + progress_text(self.count, now - self._started, place))
        elif self.count % self.every == 0:
            self.stream.write(f"... {progress_text(self.count, now - self._started, place)}\n")
        else:
            return
        self.stream.flush()

    def say(self, message: str) -> None:
        """A message of its own line (a file begun, a bad line), not overwritten by the next redraw."""
        if self.is_tty and self._drawn_at is not None:
            self.stream.write(CLEAR_LINE)
            self._drawn_at = None  # redraw at the next measurement
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        """On a terminal, draws the final count and ends the line, so what follows starts on a
        line of its own."""
        if self.is_tty and self.count:
            text = progress_text(self.count, self.clock() - self._started, self._place)
            self.stream.write(CLEAR_LINE + text + "\n")
            self.stream.flush()
            self._drawn_at = None
