"""The cyclic garbage collector tuned for many requests or measurements in flight: while a control
helper serves, and while the probe measures a round.

With CPython's default young threshold (700 allocations) and 100 requests in flight, the
collector runs every few requests, finds each request's objects still alive (awaiting the
network), and promotes them to the older generations, which it then walks again: 0.35 ms per
distinct-site request, 7% of the helper's CPU (benchmarks/bench_helper.py), and 0.15 ms per
measurement, 5% of the probe's (benchmarks/bench_measure.py). At 10,000 most of a request's
objects are freed by their reference counts first. Young cyclic garbage (closed
transports, closures) then waits for at most 10,000 allocations, a few MB. Garbage that had
been promoted first (a connection that lived through young collections, then closed, with its
TLS state and buffers) would wait for the old generation to grow by a quarter, so RSS crept
up by MBs over a 20,000-request soak: a full collection every FULL_COLLECTION_SECONDS frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

YOUNG_THRESHOLD = 10_000
# A full collection of a helper that knows 5,000 sites takes 25-70 ms (start-up's objects
# frozen): every 30 s, at most a quarter of a percent of one core.
FULL_COLLECTION_SECONDS = 30.0

_started = 0
_saved_threshold: tuple[int, int, int] = gc.get_threshold()


def tune_for_serving(*, collect_first: bool = True) -> None:
    """Raise the young threshold and freeze what start-up made (modules, the app): those live as
    long as the process, so no full collection needs to walk them. Without `collect_first`,
    garbage already there is frozen too, and freed only after `restore()`: cheap at the start of
    each round, where a full collection of a big process would cost more than it saves."""
    global _started, _saved_threshold
    if _started == 0:
        _saved_threshold = gc.get_threshold()
        if collect_first:
            gc.collect()  # garbage frozen would only be freed when the process unfreezes
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *_saved_threshold[1:])
    _started += 1


def restore() -> None:
    """Undo tune_for_serving once the last helper or round of the process has stopped (tests
    start many)."""
    global _started
    if _started == 0:
        return
    _started -= 1
    if _started == 0:
        gc.set_threshold(*_saved_threshold)
        gc.unfreeze()


async def collect_old_garbage(interval: float = FULL_COLLECTION_SECONDS) -> None:
    """A full collection every `interval` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        gc.collect()


@contextlib.asynccontextmanager
async def tuned_while_busy() -> AsyncIterator[None]:
    """The collector tuned, with a full collection every FULL_COLLECTION_SECONDS, for as long as
    the block runs (a round of measurements); as it was after."""
    tune_for_serving(collect_first=False)
    collector = asyncio.get_running_loop().create_task(collect_old_garbage())
    try:
        yield
    finally:
        collector.cancel()
        restore()
