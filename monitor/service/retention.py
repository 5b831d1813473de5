"""Retention: a periodic job that prunes measurements older than [storage] retention_days."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.store import Store

log = logging.getLogger(__name__)

# Runs a blocking store call where the store lives (StoreWriter.call, StoreRecorder.call).
CallInWriter = Callable[..., Awaitable[Any]]


def prune_job(call_in_writer: CallInWriter, store: Store, retention_days: int, *,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC),
              ) -> Callable[[], Awaitable[int]]:
    """A job for MonitorScheduler.add_periodic: delete what is older than `retention_days`
    (evidence of current states and transitions stays, see Store.prune); returns how many."""
    if retention_days <= 0:
        raise ValueError(f"retention_days must be > 0 to prune, not {retention_days}")

    async def prune_old_measurements() -> int:
        cutoff = clock() - timedelta(days=retention_days)
        deleted: int = await call_in_writer(store.prune, cutoff)
        log.info("retention: deleted %d measurements older than %s", deleted,
                 cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return deleted

    return prune_old_measurements
