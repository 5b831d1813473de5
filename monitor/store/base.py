"""The Store protocol: what every storage backend (SQLite, PostgreSQL) offers the monitor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

# StoreError and redact_database_url are defined beside the connection; named here too, as before.
from monitor.store.database import Database
from monitor.store.database import StoreError as StoreError
from monitor.store.database import redact_database_url as redact_database_url
from monitor.store.migrations import MigrationSet

# Times given to query methods: a datetime (naive = UTC) or text, ISO 8601 UTC
# ("2026-11-25", "2026-11-25T18:01:02Z"); compared with measured_at ("YYYY-MM-DDTHH:MM:SSZ").
TimeBound = datetime | str


def utc_now() -> datetime:
    """The stores' default clock (tests hand a store their own)."""
    return datetime.now(UTC)


class StateDecisionLike(Protocol):
    """What a `decide` callback returns (monitor.state.StateDecision has this shape)."""

    @property
    def new_state_row(self) -> dict[str, Any]: ...

    @property
    def transition(self) -> dict[str, Any] | None: ...


# Given the target_state row before this measurement (None before the first one) and the new
# measurement's row, decides the next state; runs inside the store's transaction, so pure only.
DecideState = Callable[[dict[str, Any] | None, dict[str, Any]], StateDecisionLike]


def decision_order(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The order a batch is decided in: pair by pair, so writers of one batch take their pair
    locks in one order and never deadlock; within a pair oldest first, so late measurements
    still date a block from when it was measured."""
    return (row["vantage_id"], row["url"], row["measured_at"], row["uid"])


@dataclass(frozen=True, slots=True)
class SavedWithState:
    """What save_measurement_with_state did: whether the uid was new, the state row now in the
    store, and the decision taken (None when the uid was already stored)."""

    saved: bool
    state_row: dict[str, Any] | None
    decision: StateDecisionLike | None


@runtime_checkable
class Store(Protocol):
    """Synchronous storage of measurements, runs, target states and transitions.

    Methods are blocking; async callers go through monitor.store.threads (StoreWriter, a
    thread that owns the connection) or asyncio.to_thread. Every write method is one transaction.
    Rows are plain dicts whose keys are the column names of docs/measurement-format.md "Store".
    """

    @property
    def database(self) -> Database:
        """The store's connection with its dialect, for SQL beyond these methods (report
        queries, the alert tables, the collector's registry): one connection per store."""
        ...

    def migrate(self, migration_sets: Sequence[MigrationSet] | None = None) -> int:
        """Applies what the ledger lacks of `migration_sets` (None: the sets the store was
        opened with); returns the store set's version now in place."""
        ...

    def schema_version(self) -> int:
        """The highest migration of the store set applied (0 for an empty database)."""
        ...

    # ---- targets and runs -------------------------------------------------------------------

    def save_targets(self, targets: Iterable[Mapping[str, Any] | Any]) -> int:
        """Upserts targets (dicts or dataclasses with id, name, list_name, category_code, urls,
        briefing); returns how many were written."""
        ...

    def start_run(self, list_name: str, vantage_id: str) -> str:
        """Records the start of one round over one list; returns the new run id."""
        ...

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int],
                   reason: str | None = None) -> None:
        """Records the end of a run: status ("ok", "degraded", "interrupted"), counts, and
        for a degraded one the reason."""
        ...

    def load_runs(self, *, limit: int = 20, vantage_id: str | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first."""
        ...

    def close_stale_runs(self, vantage_id: str) -> int:
        """Marks this vantage's runs still "running" (left by a process that was killed) as
        "interrupted", finished now; returns how many. Called as the service starts."""
        ...

    # ---- measurements ---------------------------------------------------------------------

    def save_measurement(self, measurement: Mapping[str, Any], *, target_id: str | None,
                         run_id: str | None = None, confirmation: int = 0) -> bool:
        """Stores one OONI measurement; False when its uid was already stored (idempotent)."""
        ...

    def save_measurement_with_state(
        self, measurement: Mapping[str, Any], *, target_id: str | None, run_id: str | None,
        confirmation: int, decide: DecideState,
    ) -> SavedWithState:
        """Stores one measurement, loads its (vantage, url) state, calls `decide` and stores the
        new state and transition, all in one transaction: a crash leaves both or neither.
        A uid already stored changes nothing (decide is not called)."""
        ...

    def save_measurements(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Stores rows made by monitor.store.rows.measurement_row in one transaction;
        returns how many were new (uids already stored are skipped)."""
        ...

    def save_measurements_with_states(self, rows: Iterable[Mapping[str, Any]],
                                      decide: DecideState) -> list[str]:
        """Stores rows as save_measurements and decides the (vantage, url) state of each row that
        was new (as decide_and_save_state, in decision_order), all in one transaction; returns
        the new uids. A uid already stored moves no state: its row is not this request's to
        judge, whoever sent it and with whatever vantage or URL."""
        ...

    def load_measurement(self, uid: str) -> dict[str, Any] | None:
        """The whole OONI measurement (parsed JSON) of one uid, or None."""
        ...

    def iter_measurements(self, *, since: TimeBound | None = None, until: TimeBound | None = None,
                          vantage_id: str | None = None, target_id: str | None = None,
                          url: str | None = None, order: Literal["asc", "desc"] = "asc",
                          limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Measurement rows (columns, `json` as text) with since <= measured_at < until,
        ordered by measured_at; streamed, so a year of rows does not sit in memory."""
        ...

    def count_measurements(self, *, since: TimeBound | None = None,
                           until: TimeBound | None = None) -> int:
        """How many measurements lie in [since, until)."""
        ...

    # ---- state ----------------------------------------------------------------------------

    def load_states(self, *, list_name: str | None = None, state: str | None = None,
                    category: str | None = None,
                    vantage_id: str | None = None) -> list[dict[str, Any]]:
        """Current target_state rows, with the target's name, list_name and category_code
        (None when the target is not in the targets table)."""
        ...

    def load_state(self, vantage_id: str, url: str) -> dict[str, Any] | None:
        """The target_state row of one (vantage, url), or None before its first measurement."""
        ...

    def save_state(self, state_row: Mapping[str, Any],
                   transition: Mapping[str, Any] | None) -> None:
        """Upserts a target_state row and appends its transition, in one transaction."""
        ...

    def decide_and_save_state(self, row: Mapping[str, Any],
                              decide: DecideState) -> StateDecisionLike:
        """For a stored measurement row: loads its (vantage, url) state, calls `decide` and
        stores the new state and transition, in one transaction that makes other writers of the
        same pair wait (two collector requests carrying one batch must not both count it)."""
        ...

    def load_transitions(self, *, url: str | None = None, target_id: str | None = None,
                         vantage_id: str | None = None, since: TimeBound | None = None,
                         until: TimeBound | None = None,
                         after_id: int | None = None) -> list[dict[str, Any]]:
        """state_transitions rows in order of id (= time of recording); `after_id` lets a
        consumer (alerts) read only what it has not seen."""
        ...

    # ---- spool (measurements waiting for upload to a collector) ---------------------------

    def spool_pending(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` measurements waiting for upload, oldest first: {"uid", "json"} (json as
        text); parked ones are not among them."""
        ...

    def mark_uploaded(self, uids: Iterable[str]) -> int:
        """Removes uploaded uids from the spool; returns how many were removed."""
        ...

    def spool_backlog(self) -> int:
        """How many measurements wait for upload (parked ones not counted)."""
        ...

    def park_upload(self, uid: str, reason: str) -> bool:
        """Keeps a spooled measurement the collector refused for good out of the uploads, with
        the collector's reason; False when the uid is not in the spool."""
        ...

    def unpark_uploads(self, reason_contains: str, parked_before: str) -> int:
        """Parked uploads whose reason holds `reason_contains`, parked before `parked_before`,
        go back to pending (a reason that may pass: a clock); returns how many."""
        ...

    def spool_parked(self) -> int:
        """How many spooled measurements the collector refused for good."""
        ...

    def load_parked(self, limit: int = 100) -> list[dict[str, Any]]:
        """Parked spool rows, newest first: {"uid", "queued_at", "parked_at", "reason"}."""
        ...

    # ---- upkeep ----------------------------------------------------------------------------

    def prune(self, older_than: TimeBound) -> int:
        """Deletes measurements measured before `older_than`, except those that are evidence of
        a current state or of a transition and those still waiting for upload (pending in the
        spool); returns how many were deleted."""
        ...

    def close(self) -> None:
        """Releases the connection; the store cannot be used afterwards."""
        ...
