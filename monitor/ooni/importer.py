"""Store OONI measurements once per uid, re-judged, and move each network's states with them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.state import Observation, StateDecision, decide_next_state
from monitor.store import Store, measurement_row
from monitor.store.rows import MeasurementFormatError
from probes.fingerprints_match import FingerprintDB
from probes.ooni.rejudge import NotImportable, rejudge
from targets.model import Target

# Measurements written in one store transaction: bounded memory, few commits.
BATCH = 200


@dataclass(slots=True)
class ImportCounts:
    read: int = 0
    stored: int = 0
    already_stored: int = 0
    skipped: int = 0
    bad: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.read} measurements read: {self.stored} stored, {self.already_stored} "
                f"already stored, {self.skipped} skipped, {self.bad} bad lines")


class OoniImporter:
    """Feeds measurements in; each batch is one transaction of rows and their state decisions."""

    def __init__(self, store: Store, targets: tuple[Target, ...] | list[Target], *,
                 confirmations_needed: int, fingerprints: FingerprintDB | None = None,
                 report: Callable[[str], None] = lambda _message: None) -> None:
        self.store = store
        self.targets = tuple(targets)
        self.confirmations_needed = confirmations_needed
        self.fingerprints = fingerprints
        self.report = report
        self.counts = ImportCounts()
        self._pending: list[dict[str, Any]] = []
        self._saved_targets: set[str] = set()

    def bad_line(self, place: str, error: str) -> None:
        self.counts.bad += 1
        self.counts.errors.append(f"{place}: {error}")
        self.report(f"{place}: {error}")

    def add(self, place: str, measurement: dict[str, Any]) -> None:
        self.counts.read += 1
        try:
            stored = rejudge(measurement, self.targets, fingerprints=self.fingerprints)
            row = measurement_row(stored, target_id=None, run_id=None, confirmation=0)
        except NotImportable as error:
            self.counts.skipped += 1
            self.report(f"{place}: skipped: {error}")
            return
        except (MeasurementFormatError, ValueError, TypeError, KeyError, AttributeError) as error:
            # A measurement this analysis cannot read is one bad line, never the end of the import.
            self.bad_line(place, f"{type(error).__name__}: {error}")
            return
        self._pending.append(row)
        if len(self._pending) >= BATCH:
            self.flush()

    def add_all(self, lines: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for place, measurement in lines:
            self.add(place, measurement)

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        # OONI's files are in time order per report; states take observations oldest first.
        rows.sort(key=lambda row: row["measured_at"])
        # The targets matched are saved too (as `run` saves its lists): reports and the
        # dashboard read names and lineage from the store.
        matched = {row["target_id"] for row in rows if row["target_id"]} - self._saved_targets
        if matched:
            self.store.save_targets([t for t in self.targets if t.id in matched])
            self._saved_targets |= matched
        new = self.store.save_measurements_with_states(rows, self._decide)
        self.counts.stored += len(new)
        self.counts.already_stored += len(rows) - len(new)

    def _decide(self, current: dict[str, Any] | None, row: dict[str, Any]) -> StateDecision:
        return decide_next_state(current, Observation.from_row(row),
                                 confirmations_needed=self.confirmations_needed)
