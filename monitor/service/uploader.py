"""Probe side: drain the local spool to the collector in batches, retrying until it is stored.

Measurements are saved locally (and spooled) before any upload, and a uid leaves the spool only
after the collector answered 2xx; the collector stores by uid idempotently. So an outage, a
restart or kill -9 at any moment can re-send a batch, never lose or double one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp

from monitor.service.runner import ThreadedStore
from monitor.settings import Settings
from monitor.store import Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
BatchOutcome = Literal["stored", "retry", "rejected_one", "too_large", "auth", "config"]


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """How hard one pass tries before it leaves the rest for the next pass."""

    batch: int = 500
    attempts: int = 4  # per batch, within one pass
    base_delay: float = 1.0
    max_delay: float = 300.0
    request_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class UploadResult:
    uploaded: int = 0  # acknowledged by the collector (new there, or already there)
    new_at_collector: int = 0
    rejected: int = 0  # refused for good; parked in the spool with the reason
    backlog: int = 0  # still waiting after this pass
    error: str | None = None  # why the pass stopped before the spool was empty


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): many probes that lost the
    collector together do not all come back in the same second."""
    ceiling = min(cap, base * (2**attempt))
    return (rng or random).uniform(0, ceiling)


def classify_response(status: int, body: Any) -> BatchOutcome:
    """What an HTTP answer means for the batch that was sent."""
    if 200 <= status < 300:
        return "stored"
    if status in (401, 403) and isinstance(body, dict) and body.get("field") == "Authorization":
        return "auth"
    if status == 413:
        return "too_large" if not (isinstance(body, dict) and "index" in body) else "rejected_one"
    if status in (408, 425, 429) or status >= 500:
        return "retry"
    if 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("index"), int):
        return "rejected_one"
    if 400 <= status < 500:
        return "config"  # the collector refuses the request itself (wrong URL, old API)
    return "retry"


# A Store, or a StoreWriter / the runner's StoreRecorder that owns its store's thread.
StoreOrThread = Store | ThreadedStore


async def _call(store: StoreOrThread, method: str, *args: Any) -> Any:
    # A StoreWriter owns its store's thread; a bare Store runs in a worker thread.
    call = getattr(store, "call", None)
    if call is not None:
        return await call(getattr(cast(ThreadedStore, store).store, method), *args)
    return await asyncio.to_thread(getattr(store, method), *args)


def rejection_reason(status: int, body: Any) -> str:
    """One line saying why the collector refused a measurement, e.g.
    "403 measurements[3].probe_asn: is 'AS1' but probe 'kz-1' registered 'AS9198'"."""
    if isinstance(body, dict):
        field = body.get("field")
        return f"{status} {field}: {body.get('error')}" if field else f"{status} {body.get('error')}"
    return f"{status} {str(body)[:200]}"


def refused_in_batch(body: Any, uids: list[str]) -> list[tuple[str, Any]]:
    """(uid, that measurement's refusal) for each measurement the collector named: its
    `rejected` list, or the one `index` of collectors before it."""
    if not isinstance(body, dict):
        return []
    items = body.get("rejected")
    if not isinstance(items, list) or not items:
        items = [body]
    named = []
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(uids):
            named.append((uids[index], {"error": item.get("error"), "field": item.get("field")}))
    return list(dict(named).items())


async def park(store: StoreOrThread, path: Path | None, uid: str, status: int, body: Any) -> None:
    """The measurement stays in the local database, parked in the spool with the collector's
    reason (`blockmon status` counts them); also a JSONL line when `path` is given."""
    await _call(store, "park_upload", uid, rejection_reason(status, body))
    record_rejection(path, uid, status, body)


def record_rejection(path: Path | None, uid: str, status: int, body: Any) -> None:
    """Logs why a measurement never left, and appends it to the JSONL file `path` if given."""
    reason = body.get("error") if isinstance(body, dict) else str(body)[:200]
    field = body.get("field") if isinstance(body, dict) else None
    log.warning("collector refused measurement %s for good (%s %s: %s)", uid, status, field, reason)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({
            "uid": uid, "status": status, "field": field, "reason": reason,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }) + "\n")


UNPARK_AFTER = timedelta(hours=1)

# This probe's clock as it sends: the collector re-dates a skewed probe's measurements by it.
PROBE_TIME_HEADER = "X-Blockmon-Probe-Time"


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def post_batch(
    session: aiohttp.ClientSession, url: str, token: str, measurements: list[Any], timeout: float,
    *, clock: Callable[[], datetime] = _utc_now,
) -> tuple[int, Any] | str:
    """POST one batch; (status, JSON body) or a failure string when no answer came."""
    payload = json.dumps({"measurements": measurements}, ensure_ascii=False).encode("utf-8")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               PROBE_TIME_HEADER: clock().strftime("%Y-%m-%d %H:%M:%S")}
    try:
        async with session.post(
            url,
            data=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            try:
                body = await response.json(content_type=None)
            except (json.JSONDecodeError, ValueError, aiohttp.ClientPayloadError):
                body = None
            return response.status, body
    except TimeoutError:
        return "generic_timeout_error"
    except aiohttp.ClientConnectorError:
        return "connection_refused"
    except aiohttp.ServerDisconnectedError:
        return "eof_error"
    except (aiohttp.ClientError, OSError):
        return "connection_reset"


async def upload_pending(
    store: StoreOrThread,
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    policy: UploadPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    rejection_log: Path | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> UploadResult:
    """One pass: send spooled measurements until the spool is empty or the collector fails.

    `store` is a Store or a StoreWriter; `settings` the Settings ([collector] url, token,
    upload_batch). Network failures and 5xx are retried with backoff, then left for the next pass.
    """
    collector = settings.collector
    if not collector.url or not collector.token:
        return UploadResult(
            backlog=await _call(store, "spool_backlog"),
            error="no [collector] url and token configured",
        )
    policy = policy or UploadPolicy(batch=collector.upload_batch)
    endpoint = collector.url.rstrip("/") + "/api/v1/measurements"
    # Refusals for the time are not for ever: the clock may be fixed, or the collector re-dates
    # a skewed probe now. They are tried again an hour after they were parked (one refusal for
    # all of them, rejected[], so a retry costs one POST per batch, not one per measurement).
    retry_before = (clock() - UNPARK_AFTER).strftime("%Y-%m-%dT%H:%M:%SZ")
    unparked = await _call(store, "unpark_uploads", "measurement_start_time", retry_before)
    if unparked:
        log.info("upload: %d measurements parked for their time are tried again", unparked)
    uploaded = new = rejected = 0
    batch_size = policy.batch
    attempt = 0
    error: str | None = None
    while True:
        pending = await _call(store, "spool_pending", batch_size)
        if not pending:
            break
        uids = [row["uid"] for row in pending]
        measurements = [json.loads(row["json"]) for row in pending]
        answer = await post_batch(session, endpoint, collector.token, measurements,
                                  policy.request_timeout, clock=clock)
        if isinstance(answer, str):
            outcome: BatchOutcome = "retry"
            status, body = 0, answer
        else:
            status, body = answer
            outcome = classify_response(status, body)

        if outcome == "stored":
            await _call(store, "mark_uploaded", uids)
            uploaded += len(uids)
            new += int(body.get("stored", 0)) if isinstance(body, dict) else 0
            attempt = 0
            batch_size = policy.batch
            continue
        if outcome == "rejected_one":
            culprits = refused_in_batch(body, uids)
            if not culprits:
                error = f"collector refused a batch without naming the measurement ({status})"
                break
            # Every measurement the collector named is parked now, so the rest goes once more,
            # not once per refused measurement (finding 10: 300 refused took 201 POSTs).
            for uid, reason in culprits:
                await park(store, rejection_log, uid, status, reason)
            rejected += len(culprits)
            continue
        if outcome == "too_large":
            if batch_size > 1:
                batch_size = max(1, batch_size // 2)
                continue
            await park(store, rejection_log, uids[0], status, body)
            rejected += 1
            batch_size = policy.batch
            continue
        if outcome in ("auth", "config"):
            # Nothing is dropped: a wrong or revoked token is the operator's to fix.
            reason = body.get("error") if isinstance(body, dict) else body
            error = f"collector answered {status}: {reason}"
            break
        attempt += 1
        error = f"{body}" if status == 0 else f"collector answered {status}"
        if attempt >= policy.attempts:
            break
        await sleep(backoff_delay(attempt, base=policy.base_delay, cap=policy.max_delay))
    backlog = await _call(store, "spool_backlog")
    if backlog == 0:
        error = None
    return UploadResult(uploaded, new, rejected, backlog, error)


async def run_uploader(
    store: StoreOrThread,
    settings: Settings,
    *,
    stop: asyncio.Event,
    policy: UploadPolicy | None = None,
    rejection_log: Path | None = None,
    sleep_between: Callable[[float], float] | None = None,
) -> None:
    """Upload every [collector] upload_interval_seconds until `stop`; after failed passes the wait
    grows exponentially (with jitter) up to policy.max_delay, and resets after a good pass.

    For the scheduler, prefer `add_periodic("upload", lambda: upload_pending(...), seconds=...)`;
    this loop is for processes that have no scheduler (a probe that only uploads).
    """
    policy = policy or UploadPolicy(batch=settings.collector.upload_batch)
    interval = float(settings.collector.upload_interval_seconds)
    failures = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            result = await upload_pending(
                store, settings, session, policy=policy, rejection_log=rejection_log
            )
            if result.error:
                failures += 1
                log.info("upload pass stopped: %s (%d waiting)", result.error, result.backlog)
                wait = max(interval, backoff_delay(failures, base=policy.base_delay, cap=policy.max_delay))
            else:
                failures = 0
                wait = interval
            if sleep_between is not None:
                wait = sleep_between(wait)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass


def upload_job(
    store: StoreOrThread, settings: Settings, *, rejection_log: Path | None = None,
    policy: UploadPolicy | None = None,
) -> Callable[[], Awaitable[UploadResult]]:
    """A job for MonitorScheduler.add_periodic: one upload pass with its own HTTP session.

        scheduler.add_periodic("upload", upload_job(writer, settings),
                               seconds=settings.collector.upload_interval_seconds)

    Retries within a pass follow `policy`; what is left waits for the next tick.
    """

    async def one_pass() -> UploadResult:
        async with aiohttp.ClientSession() as session:
            result = await upload_pending(store, settings, session, policy=policy,
                                          rejection_log=rejection_log)
        if result.error:
            log.info("upload pass stopped: %s (%d waiting)", result.error, result.backlog)
        return result

    return one_pass
