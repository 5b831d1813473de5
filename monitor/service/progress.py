"""What a round shows a person: a progress line on stderr and a closing table of outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO


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


def summarize_measurement(measurement: dict[str, Any], target_id: str, *, state: str | None,
                          confirmation: int, saved: bool) -> UrlOutcome:
    """The few fields of a measurement a round reports (pure)."""
    test_keys = measurement.get("test_keys") or {}
    failure = (test_keys.get("dns_experiment_failure") or test_keys.get("http_experiment_failure")
               or test_keys.get("control_failure"))
    return UrlOutcome(
        target_id=target_id,
        url=measurement.get("input", ""),
        measurement_uid=measurement.get("measurement_uid"),
        blocking=test_keys.get("blocking"),
        accessible=test_keys.get("accessible"),
        blocking_method=test_keys.get("blocking_method"),
        failure=failure,
        state=state,
        confirmation=confirmation,
        saved=saved,
    )


def render_progress_line(done: int, total: int, anomalous: int, retests_done: int = 0,
                         retests_total: int = 0) -> str:
    """URLs and re-tests counted apart: a re-test is a second look at a URL, not another URL."""
    line = f"{done}/{total} URLs measured, {anomalous} anomalous"
    if retests_total:
        line += f"; re-tests {retests_done}/{retests_total}"
    return line


def render_progress_bar(done: int, total: int, anomalous: int, retests_done: int = 0,
                        retests_total: int = 0, *, width: int = 30) -> str:
    steps, finished = total + retests_total, done + retests_done
    filled = width if steps == 0 else int(width * finished / steps)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {render_progress_line(done, total, anomalous, retests_done, retests_total)}"


# The closing table's order: blocked targets first, then anomalies, then the rest.
_STATE_RANK = {"blocked": 0, "anomaly": 1, "intermittent": 2, "down": 3, "unknown": 4,
               "accessible": 5}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def render_round_table(outcomes: Sequence[UrlOutcome]) -> str:
    """One row per target, blocked first: its URLs, how many were anomalous in their latest
    measurement, their states, the methods seen, the failures."""
    by_target: dict[str, list[UrlOutcome]] = {}
    for outcome in outcomes:
        by_target.setdefault(outcome.target_id, []).append(outcome)
    header = ("target", "urls", "anomalous", "state", "methods", "failures")
    ranked: list[tuple[tuple[int, int, str], tuple[str, ...]]] = []
    for target_id, target_outcomes in by_target.items():
        latest = _latest_per_url(target_outcomes)
        anomalous = sum(1 for outcome in latest if outcome.anomalous)
        methods = sorted({o.blocking_method for o in latest if o.blocking_method})
        failures = sorted({o.failure for o in latest if o.failure})
        states = sorted({o.state for o in latest if o.state},
                        key=lambda state: _STATE_RANK.get(state, len(_STATE_RANK)))
        rank = min((_STATE_RANK.get(state, len(_STATE_RANK)) for state in states),
                   default=len(_STATE_RANK))
        ranked.append(((rank, -anomalous, target_id), (
            target_id, str(len(latest)), str(anomalous), ",".join(states) or "-",
            ",".join(methods) or "-", ",".join(failures) or "-")))
    rows = [row for _, row in sorted(ranked)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_round_summary(list_name: str, outcomes: Sequence[UrlOutcome], status: str) -> str:
    """The round in one line, URLs and targets each named as such (the same words as the
    progress line and the report; a re-test is not another URL)."""
    latest = _latest_per_url(outcomes)
    targets = len({outcome.target_id for outcome in latest})
    confirmed = [outcome for outcome in latest if outcome.state == "blocked"]
    waiting = sum(1 for outcome in latest if outcome.state == "anomaly")
    anomalous = sum(1 for outcome in latest if outcome.anomalous)
    confirmed_targets = len({outcome.target_id for outcome in confirmed})
    return (
        f"list {list_name}: {len(latest)} {_plural(len(latest), 'URL')} of {targets} "
        f"{_plural(targets, 'target')}; {anomalous} {_plural(anomalous, 'URL')} anomalous, "
        f"{len(confirmed)} {_plural(len(confirmed), 'URL')} confirmed blocked "
        f"({confirmed_targets} {_plural(confirmed_targets, 'target')}), {waiting} awaiting "
        f"re-tests; round {status}"
    )


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


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
        self.total = total  # URLs
        self.done = 0
        self.retests_total = 0
        self.retests_done = 0
        self._anomalous: dict[tuple[str, str], bool] = {}  # URL -> its latest was anomalous
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.min_interval_seconds = min_interval_seconds
        self._last_write = 0.0

    @property
    def anomalous(self) -> int:
        """URLs whose latest measurement (first or re-test) was anomalous."""
        return sum(self._anomalous.values())

    def add_total(self, extra: int) -> None:
        """Re-tests asked for: they are counted apart from URLs."""
        self.retests_total += extra

    def record(self, outcome: UrlOutcome) -> None:
        if outcome.confirmation > 0:
            self.retests_done += 1
        else:
            self.done += 1
        self._anomalous[(outcome.target_id, outcome.url)] = outcome.anomalous
        now = time.monotonic()
        finished = self.done >= self.total and self.retests_done >= self.retests_total
        if not finished and now - self._last_write < self.min_interval_seconds:
            return
        self._last_write = now
        counts = (self.done, self.total, self.anomalous, self.retests_done, self.retests_total)
        if self.is_tty:
            self.stream.write("\r" + render_progress_bar(*counts))
        else:
            self.stream.write(render_progress_line(*counts) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.is_tty and (self.done or self.retests_done):
            self.stream.write("\n")
            self.stream.flush()
