"""What a round shows a person: a progress line on stderr and a closing table of outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, slots=True)
class UrlOutcome:
    """One measured URL as a round reports it (the store keeps the whole measurement)."""

    target_id: str
    url: str
    measurement_uid: str | None
    blocking: str | bool | None
    accessible: bool | None
    blocking_method: str | None
    failure: str | None
    state: str | None
    confirmation: int = 0
    saved: bool = True

    @property
    def anomalous(self) -> bool:
        return self.blocking not in (False, None)


def render_progress_line(done: int, total: int, blocked: int) -> str:
    return f"{done}/{total} measured, {blocked} blocked"


def render_progress_bar(done: int, total: int, blocked: int, *, width: int = 30) -> str:
    filled = width if total == 0 else int(width * done / total)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {render_progress_line(done, total, blocked)}"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def render_round_table(outcomes: Sequence[UrlOutcome]) -> str:
    """One row per target: its URLs, how many look blocked, the methods seen, the failures."""
    by_target: dict[str, list[UrlOutcome]] = {}
    for outcome in outcomes:
        by_target.setdefault(outcome.target_id, []).append(outcome)
    header = ("target", "urls", "blocked", "state", "methods", "failures")
    rows: list[tuple[str, ...]] = []
    for target_id, target_outcomes in sorted(by_target.items()):
        latest = _latest_per_url(target_outcomes)
        blocked = sum(1 for outcome in latest if outcome.anomalous)
        methods = sorted({o.blocking_method for o in latest if o.blocking_method})
        failures = sorted({o.failure for o in latest if o.failure})
        states = sorted({o.state for o in latest if o.state})
        rows.append(
            (
                target_id,
                str(len(latest)),
                str(blocked),
                ",".join(states) or "-",
                ",".join(methods) or "-",
                ",".join(failures) or "-",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_round_summary(list_name: str, outcomes: Sequence[UrlOutcome], status: str) -> str:
    latest = _latest_per_url(outcomes)
    targets = len({outcome.target_id for outcome in latest})
    blocked_targets = len({outcome.target_id for outcome in latest if outcome.anomalous})
    confirmed = sum(1 for outcome in latest if outcome.state == "blocked")
    return (
        f"list {list_name}: {targets} targets, {len(latest)} URLs, "
        f"{blocked_targets} targets with blocked URLs ({confirmed} URLs confirmed blocked), "
        f"round {status}"
    )


def _latest_per_url(outcomes: Sequence[UrlOutcome]) -> list[UrlOutcome]:
    """A confirmation re-test supersedes the round's first measurement of the same URL."""
    latest: dict[tuple[str, str], UrlOutcome] = {}
    for outcome in outcomes:
        key = (outcome.target_id, outcome.url)
        if key not in latest or outcome.confirmation >= latest[key].confirmation:
            latest[key] = outcome
    return list(latest.values())


class ProgressReporter:
    """Writes progress to a stream: a redrawn bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, total: int, *, is_tty: bool | None = None,
                 min_interval_seconds: float = 0.0) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.blocked = 0
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.min_interval_seconds = min_interval_seconds
        self._last_write = 0.0

    def add_total(self, extra: int) -> None:
        self.total += extra

    def record(self, outcome: UrlOutcome) -> None:
        self.done += 1
        if outcome.anomalous:
            self.blocked += 1
        now = time.monotonic()
        if self.done < self.total and now - self._last_write < self.min_interval_seconds:
            return
        self._last_write = now
        if self.is_tty:
            self.stream.write("\r" + render_progress_bar(self.done, self.total, self.blocked))
        else:
            self.stream.write(render_progress_line(self.done, self.total, self.blocked) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.is_tty and self.done:
            self.stream.write("\n")
            self.stream.flush()
