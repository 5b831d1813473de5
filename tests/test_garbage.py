"""The helper tunes the garbage collector while it serves, the probe while it measures a round, and
both give the process its own back."""

from __future__ import annotations

import asyncio
import gc

from probes import garbage
from probes.helper import ControlService, HelperSettings


def test_tuned_while_a_helper_serves_and_restored_after_the_last() -> None:
    before = gc.get_threshold()
    garbage.tune_for_serving()
    garbage.tune_for_serving()  # a second helper in the same process (tests start many)
    try:
        assert gc.get_threshold() == (garbage.YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
        garbage.restore()
        assert gc.get_threshold()[0] == garbage.YOUNG_THRESHOLD  # the other one still serves
    finally:
        garbage.restore()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restore_without_a_start_changes_nothing() -> None:
    before = gc.get_threshold()
    garbage.restore()
    assert gc.get_threshold() == before


async def test_a_full_collection_runs_every_interval(monkeypatch) -> None:
    full: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: full.append(generation))
    collector = asyncio.get_running_loop().create_task(garbage.collect_old_garbage(0.01))
    await asyncio.sleep(0.1)
    collector.cancel()
    assert len(full) >= 3 and set(full) == {2}


async def test_a_service_collects_while_started_and_stops_with_it() -> None:
    service = ControlService(HelperSettings())
    await service.start()
    collector = service._collector
    assert collector is not None and not collector.done()
    await service.stop()
    await asyncio.sleep(0)
    assert collector.cancelled() and service._collector is None


async def test_tuned_while_busy_for_a_round_and_restored_even_when_it_fails() -> None:
    before = gc.get_threshold()
    try:
        async with garbage.tuned_while_busy():
            assert gc.get_threshold()[0] == garbage.YOUNG_THRESHOLD
            assert gc.get_freeze_count() > 0
            raise RuntimeError("a round that fails")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_measure_many_measures_with_the_collector_tuned() -> None:
    from probes.measure import measure_many
    from probes.options import ProbeOptions

    seen: list[int] = []

    def on_result(url: str, measurement: object, error: str | None) -> None:
        seen.append(gc.get_threshold()[0])

    before = gc.get_threshold()
    # An invalid URL is reported without any network traffic; the collector is tuned meanwhile.
    await measure_many(["not a url"], ProbeOptions(), 1, on_result)
    assert seen == [garbage.YOUNG_THRESHOLD]
    assert gc.get_threshold() == before
