"""Reliable delivery: claim each recorded delivery once, send, retry with backoff, digest floods."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from monitor.alerts.channels.base import Channel, TransportError, answer_wait_for
from monitor.alerts.messages import build_digest
from monitor.alerts.store_tables import AlertTables
from monitor.settings import AlertsSettings, knobs_from
from monitor.store import Store
from monitor.store.rows import store_time

log = logging.getLogger(__name__)

# Runs work(store) where the store lives (its writer thread, a collector DB thread), awaited.
InStore = Callable[[Callable[[Store], Any]], Awaitable[Any]]
_ALERTS = AlertsSettings()


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """[alerts] retry and digest knobs (their defaults are [alerts]'s)."""

    retry_base_seconds: float = _ALERTS.retry_base_seconds
    retry_max_seconds: float = _ALERTS.retry_max_seconds
    give_up_hours: float = _ALERTS.give_up_hours
    digest_threshold: int = _ALERTS.digest_threshold
    max_messages_per_hour: int = _ALERTS.max_messages_per_hour
    send_timeout_seconds: float = _ALERTS.send_timeout_seconds

    @property
    def answer_wait_seconds(self) -> float:
        """How long a request handed to a receiver may wait for its answer (channels.base)."""
        return answer_wait_for(self.send_timeout_seconds)

    @property
    def lease_seconds(self) -> float:
        # A claim outlives the longest wait for an answer (by a timeout and 10 s more), so a
        # delivery in flight is never taken over while it can still complete; after that a
        # crashed sender's claim is.
        return self.answer_wait_seconds + self.send_timeout_seconds + 10

    @classmethod
    def from_settings(cls, alerts: AlertsSettings) -> DeliveryPolicy:
        return knobs_from(cls, alerts)


def retry_delay(attempts: int, policy: DeliveryPolicy) -> float:
    """Seconds before the next try after `attempts` failed ones: base, 2 x base, ... capped."""
    if attempts < 1:
        raise ValueError("retry_delay is for after a failed attempt (attempts >= 1)")
    return float(min(policy.retry_max_seconds,
                     policy.retry_base_seconds * 2 ** min(attempts - 1, 30)))


@dataclass(slots=True)
class DeliveryReport:
    """What one pass did, per channel: sent, retried later, given up."""

    sent: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)  # over the hourly message limit
    digests: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, bucket: dict[str, int], channel: str, count: int = 1) -> None:
        bucket[channel] = bucket.get(channel, 0) + count


def _utc_now() -> datetime:
    return datetime.now(UTC)


# A channel over its hourly budget is looked at again this much later.
RATE_LIMIT_PAUSE = timedelta(minutes=5)


def messages_budget(store: Store, channels: Sequence[str], now: datetime,
                    policy: DeliveryPolicy) -> dict[str, int]:
    """How many more messages each channel may send in the hour ending now."""
    since = store_time(now - timedelta(hours=1))
    tables = AlertTables(store)
    return {channel: policy.max_messages_per_hour - tables.messages_sent_since(channel, since)
            for channel in channels}


def claim_due(store: Store, now: datetime, lease_seconds: float) -> list[dict[str, Any]]:
    """Runs on the store thread: due deliveries, each claimed with a conditional UPDATE so a
    second process (or collector replica) never sends the same one."""
    tables = AlertTables(store)
    lease_until = store_time(now + timedelta(seconds=lease_seconds))
    claimed = []
    for delivery in tables.due_deliveries(store_time(now)):
        if tables.claim_delivery(delivery, now=store_time(now), lease_until=lease_until):
            payload = json.loads(delivery["payload"])
            payload["alert_id"] = delivery["alert_id"]
            claimed.append({**delivery, "payload": payload, "attempts": delivery["attempts"] + 1})
    return claimed


async def deliver_due(in_store: InStore, channels: Mapping[str, Channel],
                      policy: DeliveryPolicy, *,
                      clock: Callable[[], datetime] = _utc_now) -> DeliveryReport:
    """One pass: claim what is due, send per channel concurrently, record each outcome.

    Channels run side by side, so one that hangs or is down delays no other; a delivery to a
    channel no longer configured stays pending (nothing is lost by editing the config).
    """
    now = clock()
    claimed = await in_store(lambda store: claim_due(store, now, policy.lease_seconds))
    by_channel: dict[str, list[dict[str, Any]]] = {}
    unconfigured: list[dict[str, Any]] = []
    for delivery in claimed:
        if delivery["channel"] in channels:
            by_channel.setdefault(delivery["channel"], []).append(delivery)
        else:
            unconfigured.append(delivery)
    report = DeliveryReport()
    if unconfigured:
        await in_store(partial(_release, deliveries=unconfigured, reason="is not configured",
                               retry_at=store_time(now)))
    budgets = await in_store(lambda store: messages_budget(store, sorted(by_channel), now,
                                                           policy))
    limited = [delivery for name, deliveries in by_channel.items() if budgets[name] < 1
               for delivery in deliveries]
    if limited:
        await in_store(partial(_release, deliveries=limited, reason="is over its hourly "
                               f"limit of {policy.max_messages_per_hour} messages",
                               retry_at=store_time(now + RATE_LIMIT_PAUSE)))
        for delivery in limited:
            report.add(report.held, delivery["channel"])
    await asyncio.gather(*(
        _send_channel(in_store, channels[name], deliveries, policy, report, clock,
                      budget=budgets[name])
        for name, deliveries in sorted(by_channel.items()) if budgets[name] >= 1))
    return report


def _release(store: Store, *, deliveries: Sequence[Mapping[str, Any]], reason: str,
             retry_at: str) -> None:
    tables = AlertTables(store)
    for delivery in deliveries:
        # Undo the claim's attempt count: nothing was tried.
        tables.execute("UPDATE alert_deliveries SET status = 'pending', claimed_until = NULL, "
                       "attempts = attempts - 1, last_error = ?, next_attempt_at = ? "
                       "WHERE id = ?",
                       (f"channel {delivery['channel']!r} {reason}", retry_at, delivery["id"]))


async def _send_channel(in_store: InStore, channel: Channel,
                        deliveries: list[dict[str, Any]], policy: DeliveryPolicy,
                        report: DeliveryReport, clock: Callable[[], datetime], *,
                        budget: int) -> None:
    # Many at once, or more than the hour's budget allows one by one: a single digest.
    if len(deliveries) > min(policy.digest_threshold, budget):
        deliveries = await _still_ours(in_store, deliveries, policy, clock)
        if not deliveries:
            return
        digest = build_digest([delivery["payload"] for delivery in deliveries])
        await _attempt(in_store, channel, deliveries, policy, report, clock,
                       lambda: channel.send_digest(digest, delivery_id=deliveries[0]["id"]),
                       digest=True)
        return
    for delivery in deliveries:
        if not await _still_ours(in_store, [delivery], policy, clock):
            continue
        await _attempt(in_store, channel, [delivery], policy, report, clock,
                       partial(channel.send, delivery["payload"], delivery_id=delivery["id"]),
                       digest=False)


async def _still_ours(in_store: InStore, deliveries: list[dict[str, Any]],
                      policy: DeliveryPolicy, clock: Callable[[], datetime]
                      ) -> list[dict[str, Any]]:
    """The lease was taken when the pass began: deliveries queued behind a slow receiver renew
    it just before their send, and one another sender took over meanwhile is not sent again."""
    lease_until = store_time(clock() + timedelta(seconds=policy.lease_seconds))
    ours = await in_store(partial(_renew_lease, deliveries=deliveries, lease_until=lease_until))
    return [delivery for delivery in deliveries if delivery["id"] in ours]


def _renew_lease(store: Store, *, deliveries: Sequence[Mapping[str, Any]],
                 lease_until: str) -> set[int]:
    """The ids of `deliveries` still claimed by this sender, their lease pushed to lease_until
    (the claim counted the attempt: a row with other attempts was taken over)."""
    tables = AlertTables(store)
    ours = set()
    for delivery in deliveries:
        if tables.execute("UPDATE alert_deliveries SET claimed_until = ? WHERE id = ? "
                          "AND status = 'sending' AND attempts = ?",
                          (lease_until, delivery["id"], delivery["attempts"])):
            ours.add(int(delivery["id"]))
    return ours


def _mark_unsent(store: Store, *, ids: list[int], error: str,
                 next_attempt_at: str | None) -> None:
    AlertTables(store).mark_unsent(ids, error=error, next_attempt_at=next_attempt_at)


async def _attempt(in_store: InStore, channel: Channel,
                   deliveries: list[dict[str, Any]], policy: DeliveryPolicy,
                   report: DeliveryReport, clock: Callable[[], datetime],
                   send: Callable[[], Awaitable[None]], *, digest: bool) -> None:
    ids = [delivery["id"] for delivery in deliveries]
    try:
        # The channel gives up on connecting after send_timeout_seconds, and on an answer to a
        # request it handed over after answer_wait_seconds: a slow receiver is waited for, not
        # sent the alert again while its answer may still come.
        await asyncio.wait_for(send(), timeout=policy.answer_wait_seconds)
    except (TimeoutError, TransportError) as error:
        message = (error.message if isinstance(error, TransportError)
                   else f"{channel.name}: no answer within {policy.answer_wait_seconds:g} s")
        permanent = isinstance(error, TransportError) and error.permanent
        report.errors.append(message)
        now = clock()
        retry: list[dict[str, Any]] = []
        give_up: list[dict[str, Any]] = []
        for delivery in deliveries:
            created = datetime.fromisoformat(delivery["created_at"].replace("Z", "+00:00"))
            too_old = now - created > timedelta(hours=policy.give_up_hours)
            (give_up if permanent or too_old else retry).append(delivery)
        for delivery in retry:
            at = store_time(now + timedelta(seconds=retry_delay(delivery["attempts"], policy)))
            await in_store(partial(_mark_unsent, ids=[delivery["id"]], error=message,
                                   next_attempt_at=at))
        if give_up:
            await in_store(partial(_mark_unsent, ids=[d["id"] for d in give_up], error=message,
                                   next_attempt_at=None))
        report.add(report.retried, channel.name, len(retry))
        report.add(report.failed, channel.name, len(give_up))
        log.warning("alert delivery via %s failed (%d to retry, %d given up): %s",
                    channel.name, len(retry), len(give_up), message)
        return
    sent_at = store_time(clock())
    await in_store(lambda store: AlertTables(store).mark_sent(ids, sent_at, digest=digest))
    report.add(report.sent, channel.name, len(ids))
    if digest:
        report.digests += 1
