"""The collector setting of tillflow's own processes: applied as asked, 0 leaves Python's
setting alone, anything else than an int in range is refused naming the value."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tillflow.service.collector import DEFAULT_THRESHOLD, MOST_THRESHOLD, tune_collector


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_young_generation_threshold_is_set_and_the_older_ones_kept() -> None:
    gc.set_threshold(700, 10, 10)
    assert tune_collector() == DEFAULT_THRESHOLD
    assert gc.get_threshold() == (DEFAULT_THRESHOLD, 10, 10)
    assert tune_collector(12_345) == 12_345
    assert gc.get_threshold() == (12_345, 10, 10)


def test_zero_leaves_the_collector_as_it_is() -> None:
    gc.set_threshold(900, 11, 12)
    assert tune_collector(0) == 900
    assert gc.get_threshold() == (900, 11, 12)
    assert gc.isenabled()


@pytest.mark.parametrize("value", [-1, MOST_THRESHOLD + 1, 2.5, True, "50000", None])
def test_anything_else_is_refused_naming_the_value(value: object) -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(ValueError, match="threshold") as raised:
        tune_collector(value)  # type: ignore[arg-type]
    assert repr(value) in str(raised.value)
    assert gc.get_threshold() == (700, 10, 10)
