"""Measures target lists: bounded concurrency, per-host politeness, save, decide state, confirm."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from monitor.service.clock_watch import ClockWatch
from monitor.service.progress import ProgressReporter, UrlOutcome, summarize_measurement
from monitor.service.round_health import RoundEvidence, degraded_reason
from monitor.settings import ProbeSettings, ScheduleSettings, Settings
from monitor.state import Observation, StateDecision, decide_next_state
from monitor.store import Store, StoreError
from probes import garbage
from probes.errors import InvalidInput
from probes.options import ProbeOptions
from probes.throughput_probe import rate_arguments, with_vantage_baselines
from targets.model import Target, TargetList

if TYPE_CHECKING:
    from probes.control_client import ControlClient

log = logging.getLogger(__name__)

# measure_url returns a probes.measurement_types.Measurement; the record chain below takes dicts.
MeasureFunction = Callable[..., Awaitable[Any]]
RetestJob = Callable[[], Awaitable[None]]
# Given a key, a job and when: arranges for the job to run then (the service's scheduler).
ScheduleRetest = Callable[[str, RetestJob, datetime], None]
Hook = Callable[[Any], Awaitable[None] | None]
P = ParamSpec("P")
T = TypeVar("T")

# The defaults of [probe] and [schedule], so a RunnerConfig built directly (demo, tests) measures
# as a default settings file would.
_PROBE = ProbeSettings()
_SCHEDULE = ScheduleSettings()
# How long in-flight measurements may go on after a stop before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 10.0


class ThreadedStore(Protocol):
    """A store reached through the one thread that owns it (StoreWriter, StoreRecorder)."""

    @property
    def store(self) -> Store: ...

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...


class Recorder(ThreadedStore, Protocol):
    """Where results go: the store, reached through its single writer thread; the service's
    jobs (uploads, retention, alerts, new lists) use the same thread through `call`."""

    async def start_run(self, list_name: str) -> str: ...

    async def finish_run(self, run_id: str, *, status: str, counts: dict[str, int],
                         reason: str | None = None) -> None: ...

    async def close_stale_runs(self) -> int: ...

    async def record(
        self, measurement: dict[str, Any], *, target: Target, run_id: str, confirmation: int,
        confirmations_needed: int,
    ) -> RecordResult: ...


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What saving one measurement did: whether it was new, the state now, any flip."""

    saved: bool
    state: str | None
    transition: dict[str, Any] | None
    wants_confirmation: bool


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """The runner's knobs, taken from [probe] and [schedule] or set directly (demo, tests)."""

    concurrency: int = _PROBE.concurrency
    per_host_limit: int = _PROBE.per_host_limit
    confirm_retests: int = _SCHEDULE.confirm_retests
    confirm_delay_seconds: float = float(_SCHEDULE.confirm_delay_seconds)
    shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS

    @property
    def confirmations_needed(self) -> int:
        return self.confirm_retests + 1

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> RunnerConfig:
        return cls(
            concurrency=settings.probe.concurrency,
            per_host_limit=settings.probe.per_host_limit,
            confirm_retests=settings.schedule.confirm_retests,
            confirm_delay_seconds=float(settings.schedule.confirm_delay_seconds),
            shutdown_grace_seconds=shutdown_grace_seconds,
        )


@dataclass(frozen=True, slots=True)
class MeasurementEvent:
    """Given to on_measurement hooks after a measurement is safely stored."""

    measurement: dict[str, Any]
    outcome: UrlOutcome
    target: Target
    run_id: str


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """Given to on_transition hooks after a state flip is stored (alerts start here)."""

    transition: dict[str, Any]
    measurement: dict[str, Any]
    target: Target


@dataclass(slots=True)
class RoundResult:
    list_name: str
    run_id: str
    status: str = "running"
    outcomes: list[UrlOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    evidence: RoundEvidence = field(default_factory=RoundEvidence)
    # Why the round's measurements cannot be judged (status "degraded"), else None.
    reason: str | None = None

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    def counts(self) -> dict[str, int]:
        return {
            "measured": sum(1 for outcome in self.outcomes if outcome.saved),
            "anomalies": sum(1 for outcome in self.outcomes if outcome.anomalous),
            "failures": sum(1 for outcome in self.outcomes if outcome.failure),
            "errors": len(self.errors),
        }


# Something that runs a blocking store call on the store's own thread and awaits the result.
CallInWriter = Callable[..., Awaitable[Any]]


def record_in_store(store: Store, measurement: dict[str, Any], *, target: Target, run_id: str,
                    confirmation: int, confirmations_needed: int) -> RecordResult:
    """Runs on the writer thread: save the measurement, decide, save state and transition.

    One store transaction (Store.save_measurement_with_state): a kill -9 leaves the measurement
    and the state it moved either both stored or both not, never the state one step behind.
    """

    def decide(current: dict[str, Any] | None, row: dict[str, Any]) -> StateDecision:
        return decide_next_state(current, Observation.from_row(row),
                                 confirmations_needed=confirmations_needed)

    outcome = store.save_measurement_with_state(
        measurement, target_id=target.id, run_id=run_id, confirmation=confirmation,
        decide=decide)
    if outcome.decision is None:  # already stored (a retried write): its state was decided then
        state = outcome.state_row["state"] if outcome.state_row else None
        return RecordResult(False, state, None, False)
    # The store hands back what `decide` returned, and decide returns a StateDecision.
    decision = cast(StateDecision, outcome.decision)
    return RecordResult(True, decision.new_state_row["state"], decision.transition,
                        decision.wants_confirmation)


class StoreRecorder:
    """The runner's Recorder over a Store: every call goes through one writer thread."""

    def __init__(self, store: Store, call_in_writer: CallInWriter, *, vantage_id: str) -> None:
        self.store = store
        self.call_in_writer = call_in_writer
        self.vantage_id = vantage_id

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Any other store call, on the writer thread (StoreWriter's spelling, for the uploader)."""
        result: T = await self.call_in_writer(function, *args, **kwargs)
        return result

    async def start_run(self, list_name: str) -> str:
        run_id: str = await self.call_in_writer(self.store.start_run, list_name, self.vantage_id)
        return run_id

    async def finish_run(self, run_id: str, *, status: str, counts: dict[str, int],
                         reason: str | None = None) -> None:
        await self.call_in_writer(self.store.finish_run, run_id, status, counts, reason)

    async def close_stale_runs(self) -> int:
        """Runs of this vantage a killed process left "running" become "interrupted"."""
        closed: int = await self.call_in_writer(self.store.close_stale_runs, self.vantage_id)
        return closed

    async def record(self, measurement: dict[str, Any], *, target: Target, run_id: str,
                     confirmation: int, confirmations_needed: int) -> RecordResult:
        result: RecordResult = await self.call_in_writer(
            record_in_store, self.store, measurement, target=target, run_id=run_id,
            confirmation=confirmation, confirmations_needed=confirmations_needed)
        return result


def _prepare_engine(options: ProbeOptions) -> None:
    from probes.measure import prepare  # the engine; imported late, as measure_url

    try:
        prepare(options)
    except Exception as error:  # e.g. a bad extra fingerprints file: each measurement says so
        log.warning("the engine could not prepare before the round: %s", error)


def _default_measure() -> MeasureFunction:
    from probes.measure import measure_url  # the engine; imported late so tests may swap it

    return measure_url


class Runner:
    """Measures lists of targets and records every result as it completes."""

    def __init__(
        self,
        settings: Settings,
        store: Recorder,
        targets: TargetList | Sequence[TargetList],
        probe_options: ProbeOptions,
        *,
        config: RunnerConfig | None = None,
        measure: MeasureFunction | None = None,
        schedule_retest: ScheduleRetest | None = None,
        session: ControlClient | None = None,
        clock_watch: ClockWatch | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        lists = [targets] if isinstance(targets, TargetList) else list(targets)
        self.lists: dict[str, TargetList] = {target_list.name: target_list for target_list in lists}
        self.probe_options = with_vantage_baselines(probe_options, lists)
        self.config = config or RunnerConfig.from_settings(settings)
        self.measure = measure or _default_measure()
        # One control client for every control-helper call of the service (its kept-alive
        # connections are reused); None lets each measurement open its own (or skip the control).
        self.session = session
        self.clock_watch = clock_watch or ClockWatch()  # the helper's Date headers on `session`
        self.schedule_retest = schedule_retest or self._retest_later
        self.on_measurement: list[Hook] = []
        self.on_transition: list[Hook] = []
        self._global_slots = asyncio.Semaphore(self.config.concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._recordings: set[asyncio.Task[Any]] = set()
        self._retest_timers: dict[str, asyncio.Task[None]] = {}
        # key -> the latest re-test asked for it; a newer ask for the same key replaces it.
        self._pending_retests: dict[str, object] = {}
        self._stopping = False
        self._progress: ProgressReporter | None = None
        self._retest_outcomes: list[UrlOutcome] = []
        # One-shot runs report re-test outcomes at the end; the service must not pile them up.
        self.keep_retest_outcomes = False

    # ---- rounds ------------------------------------------------------------------------

    async def run_round(self, list_name: str, *, progress: ProgressReporter | None = None
                        ) -> RoundResult:
        """One pass over a list; returns when each URL is measured and stored (or on stop)."""
        target_list = self.lists[list_name]
        _prepare_engine(self.probe_options)
        run_id = await self.store.start_run(list_name)
        result = RoundResult(list_name=list_name, run_id=run_id)
        result.evidence.helper_configured = self.probe_options.helper_url is not None
        self._progress, started = progress, time.monotonic()
        # A target's `repeats` measures each of its URLs that many times: a k-of-n record at once.
        jobs = [(target, url) for target in target_list.targets for url in target.url_list()
                for _ in range(target.repeats)]
        tasks = [self._spawn(self._measure_and_record(target, url, run_id, 0, result))
                 for target, url in jobs]
        try:
            async with garbage.tuned_while_busy():
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            result.evidence.clock_skew_seconds = self.clock_watch.skew_since(started)
            result.reason = degraded_reason(result.evidence)
            result.status = ("interrupted" if self._stopping
                             else "degraded" if result.reason else "ok")
            await self._close_run(result)
        if result.degraded:
            log.warning("round %s over %s degraded: %s", run_id, list_name, result.reason)
        log.info("round %s over %s %s: %s", run_id, list_name, result.status, result.counts())
        return result

    async def _close_run(self, result: RoundResult) -> None:
        try:
            # Shielded: a stop while the run row is being closed must not leave it half-done.
            await asyncio.shield(self.store.finish_run(
                result.run_id, status=result.status, counts=result.counts(),
                reason=result.reason))
        except Exception as error:  # a full disk: the round says so rather than raising
            log.error("closing run %s failed: %s: %s", result.run_id, type(error).__name__,
                      error)
            note = f"run not closed ({type(error).__name__}: {error})"
            result.reason = f"{result.reason}; {note}" if result.reason else note
            result.status = "degraded"

    async def wait_for_confirmations(self) -> list[UrlOutcome]:
        """For one-shot use: wait until no re-test is pending or running; returns their outcomes
        (collected when keep_retest_outcomes is set)."""
        while (self._pending_retests or self._retest_timers) and not self._stopping:
            await asyncio.sleep(0.05)
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        return list(self._retest_outcomes)

    # ---- one URL -----------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or url).lower()
        if host not in self._host_slots:
            self._host_slots[host] = asyncio.Semaphore(self.config.per_host_limit)
        return self._host_slots[host]

    async def _measure_and_record(self, target: Target, url: str, run_id: str,
                                  confirmation: int, result: RoundResult | None) -> None:
        if self._stopping:
            return
        # The host slot first, so URLs queued behind a busy host do not hold global slots.
        async with self._host_slot(url), self._global_slots:
            if self._stopping:
                return
            annotations = {"target_id": target.id, "list": target.list_name,
                           "vantage_id": self.probe_options.identity.vantage_id}
            if confirmation:
                annotations["confirmation"] = str(confirmation)
            try:
                extra: dict[str, Any] = {} if self.session is None else {"session": self.session}
                extra.update(rate_arguments(target, self.probe_options, url))
                measurement = await self.measure(url, self.probe_options,
                                                 annotations=annotations, report_id=run_id,
                                                 **extra)
            except asyncio.CancelledError:
                raise
            except InvalidInput as error:  # a bad URL in a target file: one line, no traceback
                log.error("not measured: %s", error)
                if result is not None:
                    result.errors.append(str(error))
                return
            except Exception as error:  # a probe bug must not end the service; it is logged whole
                log.exception("measuring %s raised", url)
                if result is not None:
                    result.errors.append(f"{url}: {type(error).__name__}: {error}")
                return
        if result is not None and isinstance(measurement, dict):
            result.evidence.add(measurement, is_control_target=target.control)
        # Once measured, the result is stored even if a stop cancels this task meanwhile.
        recording = asyncio.ensure_future(
            self._record(measurement, target, run_id, confirmation, result))
        self._recordings.add(recording)
        recording.add_done_callback(self._recordings.discard)
        await asyncio.shield(recording)

    async def _record(self, measurement: dict[str, Any], target: Target, run_id: str,
                      confirmation: int, result: RoundResult | None) -> None:
        try:
            recorded = await self.store.record(
                measurement, target=target, run_id=run_id, confirmation=confirmation,
                confirmations_needed=self.config.confirmations_needed)
        except Exception as error:
            # The round's gather swallows exceptions: without this the measurement would be
            # lost with no log line and the run reported clean.
            url = measurement.get("input") if isinstance(measurement, dict) else None
            if isinstance(error, StoreError):  # its one line says it all (a damaged file)
                log.error("storing the measurement of %s failed: %s", url or target.id, error)
            else:
                log.exception("storing the measurement of %s failed", url or target.id)
            if result is not None:
                result.errors.append(f"{url or target.id}: not stored: "
                                     f"{type(error).__name__}: {error}")
                result.evidence.add_not_stored(f"{type(error).__name__}: {error}")
            return
        outcome = summarize_measurement(measurement, target.id, state=recorded.state,
                                        confirmation=confirmation, saved=recorded.saved)
        log.info("saved uid=%s url=%s blocking=%s state=%s confirmation=%d",
                 outcome.measurement_uid, outcome.url, outcome.blocking, outcome.state,
                 confirmation)
        if result is not None:
            result.outcomes.append(outcome)
        elif self.keep_retest_outcomes:
            self._retest_outcomes.append(outcome)
        if self._progress is not None:
            self._progress.record(outcome)
        await self._call_hooks(self.on_measurement,
                               MeasurementEvent(measurement, outcome, target, run_id))
        if recorded.transition is not None:
            await self._call_hooks(self.on_transition,
                                   TransitionEvent(recorded.transition, measurement, target))
        if recorded.wants_confirmation and confirmation < self.config.confirm_retests:
            self._ask_for_retest(target, outcome.url, run_id, confirmation + 1)

    async def _call_hooks(self, hooks: Iterable[Hook], event: Any) -> None:
        for hook in list(hooks):
            try:
                returned = hook(event)
                if inspect.isawaitable(returned):
                    await returned
            except Exception:  # a broken consumer (alerts, metrics) must not stop measuring
                log.exception("hook %r failed", hook)

    # ---- confirmation re-tests ---------------------------------------------------------

    def _ask_for_retest(self, target: Target, url: str, run_id: str, confirmation: int) -> None:
        if self._stopping:
            return
        key = f"{self.probe_options.identity.vantage_id}|{url}"
        at = datetime.now(UTC) + timedelta(seconds=self.config.confirm_delay_seconds)
        token = object()
        self._pending_retests[key] = token
        if self._progress is not None:
            self._progress.add_total(1)

        async def retest() -> None:
            try:
                await self._spawn(self._measure_and_record(target, url, run_id, confirmation, None))
            finally:
                # Unless this re-test asked for the next one meanwhile, nothing is pending.
                if self._pending_retests.get(key) is token:
                    del self._pending_retests[key]

        log.info("anomaly on %s: re-test %d of %d at %s", url, confirmation,
                 self.config.confirm_retests, at.isoformat(timespec="seconds"))
        self.schedule_retest(key, retest, at)

    def _retest_later(self, key: str, job: RetestJob, at: datetime) -> None:
        """Without a scheduler (one-shot runs): a timer task on the running loop."""
        delay = max(0.0, (at - datetime.now(UTC)).total_seconds())

        async def wait_then_run() -> None:
            await asyncio.sleep(delay)
            self._retest_timers.pop(key, None)
            await job()

        previous = self._retest_timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._retest_timers[key] = asyncio.ensure_future(wait_then_run())

    # ---- stopping ----------------------------------------------------------------------

    @property
    def has_pending_retests(self) -> bool:
        return bool(self._pending_retests or self._retest_timers)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """No new measurements start; pending re-tests are dropped."""
        self._stopping = True
        for timer in self._retest_timers.values():
            timer.cancel()
        self._retest_timers.clear()
        self._pending_retests.clear()

    async def drain(self, grace_seconds: float | None = None) -> int:
        """After stop(): let in-flight measurements finish within the grace, cancel the rest,
        and wait until every finished one is stored. Returns how many were cancelled."""
        grace = self.config.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        cancelled = 0
        if self._in_flight:
            _, still_running = await asyncio.wait(list(self._in_flight), timeout=grace)
            for task in still_running:
                task.cancel()
                cancelled += 1
            if still_running:
                await asyncio.gather(*still_running, return_exceptions=True)
        if self._recordings:
            await asyncio.gather(*list(self._recordings), return_exceptions=True)
        return cancelled
