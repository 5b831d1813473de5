"""The helper tunes the garbage collector while it serves, and gives the process its own back."""

from __future__ import annotations

import gc

from probes.helper import garbage


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
