"""``tuned_for_latency``: how ``tillflow serve`` runs, and the process's own settings back
afterwards."""

from __future__ import annotations

import gc
import sys

from tillflow.service.latency_tuning import SWITCH_INTERVAL, tuned_for_latency


def test_slices_are_short_and_what_is_loaded_is_frozen_within_and_restored_after() -> None:
    interval, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    kept: list[list[int]] = [[] for _ in range(1000)]  # alive when the block starts
    with tuned_for_latency():
        assert sys.getswitchinterval() == SWITCH_INTERVAL != interval
        assert gc.get_freeze_count() >= frozen + len(kept)
    assert sys.getswitchinterval() == interval
    assert gc.get_freeze_count() == frozen
