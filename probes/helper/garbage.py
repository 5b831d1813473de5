"""The cyclic garbage collector tuned for a serving helper, for as long as a helper is started.

With CPython's default young threshold (700 allocations) and 100 requests in flight, the
collector runs every few requests, finds each request's objects still alive (awaiting the
network), and promotes them to the older generations, which it then walks again: 0.35 ms per
distinct-site request, 7% of the helper's CPU (benchmarks/bench_helper.py). At 10,000 most of a
request's objects are freed by their reference counts first. Young cyclic garbage (closed
transports, closures) then waits for at most 10,000 allocations, a few MB. Garbage that had
been promoted first (a connection that lived through young collections, then closed, with its
TLS state and buffers) would wait for the old generation to grow by a quarter, so RSS crept
up by MBs over a 20,000-request soak: a full collection every FULL_COLLECTION_SECONDS frees it.
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_THRESHOLD = 10_000
# A full collection of a helper that knows 5,000 sites takes 25-70 ms (start-up's objects
# frozen): every 30 s, at most a quarter of a percent of one core.
FULL_COLLECTION_SECONDS = 30.0

_started = 0
_saved_threshold: tuple[int, int, int] = gc.get_threshold()


def tune_for_serving() -> None:
    """Raise the young threshold and freeze what start-up made (modules, the app): those live as
    long as the process, so no full collection needs to walk them."""
    global _started, _saved_threshold
    if _started == 0:
        _saved_threshold = gc.get_threshold()
        gc.collect()  # garbage frozen would never be freed
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *_saved_threshold[1:])
    _started += 1


def restore() -> None:
    """Undo tune_for_serving once the last helper of the process has stopped (tests start many)."""
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
