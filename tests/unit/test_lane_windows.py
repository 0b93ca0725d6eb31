"""A lane's shared window answers every read exactly as the store would, whatever the
order, ranges and types of the reads of several processors, and spares the store the
reads it already made."""

from __future__ import annotations

import random

import pytest

from tillflow.engine.postgres.lane_windows import LaneWindows
from tillflow.engine.types import RecordedEvent

TYPES = ("CheckedOut", "ItemsReturned", "TillOpened", "ProductAdded")


def _log(count: int, rng: random.Random) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position.to_bytes(16, "big"),
            f"s-{position}",
            1,
            0,
            position,
            rng.choice(TYPES),
            1,
            b"{}",
            0.0,
            None,
            None,
        )
        for position in range(1, count + 1)
    ]


class Store:
    """The lane as the server has it: committed up to ``head``."""

    def __init__(self, log: list[RecordedEvent]) -> None:
        self.log = log
        self.head = 0
        self.reads = 0

    def fetch(self, after: int, upto: int, types: frozenset[str]) -> list[RecordedEvent]:
        self.reads += 1
        upto = min(upto, self.head)  # a read never sees past what is committed
        return [e for e in self.log if after < e.position <= upto and e.type in types]


@pytest.mark.parametrize("seed", range(30))
def test_reads_through_the_window_are_the_store_s_reads(seed: int) -> None:
    """Three readers of different types, each from its own checkpoint up to a head seen,
    while the head grows; a small window, so that it is trimmed and replaced too."""
    rng = random.Random(seed)
    store = Store(_log(600, rng))
    windows = LaneWindows(most=rng.choice([8, 32, 4096]))
    readers = [frozenset(rng.sample(TYPES, rng.randrange(1, 4))) for _ in range(3)]
    checkpoints = [0, 0, 0]
    for _ in range(300):
        store.head = min(len(store.log), store.head + rng.randrange(0, 12))
        reader = rng.randrange(3)
        after = checkpoints[reader]
        if rng.random() < 0.1:  # a rebuild, or a reader far behind
            after = rng.randrange(0, max(1, store.head))
        upto = rng.randrange(after, store.head + 1) if store.head > after else after
        got = windows.read(0, after, upto, readers[reader], store.fetch)
        want = [e for e in store.log if after < e.position <= upto and e.type in readers[reader]]
        assert got == want, (seed, reader, after, upto)
        checkpoints[reader] = upto


def test_a_second_processor_s_read_of_the_same_range_costs_no_read() -> None:
    store = Store(_log(100, random.Random(1)))
    store.head = 100
    windows = LaneWindows()
    both = frozenset({"CheckedOut", "ItemsReturned"})
    windows.read(0, 0, 60, both, store.fetch)
    assert store.reads == 1
    first = windows.read(0, 0, 60, frozenset({"CheckedOut"}), store.fetch)
    assert store.reads == 1 and first
    windows.read(0, 60, 100, both, store.fetch)  # on from the window's end: one read
    assert store.reads == 2
    windows.read(0, 30, 100, frozenset({"ItemsReturned"}), store.fetch)
    assert store.reads == 2


def test_a_window_that_kept_its_end_past_the_committed_head_would_lose_events() -> None:
    """The negative control of the rule that a read goes only up to a head seen: asked past
    the committed head, the window records a range the store could not fill, and a later
    read inside it misses what committed since."""
    rng = random.Random(2)
    store = Store(_log(50, rng))
    store.head = 20
    windows = LaneWindows()
    kinds = frozenset(TYPES)
    windows.read(0, 0, 50, kinds, store.fetch)  # past the head: breaks the rule
    store.head = 50
    assert windows.read(0, 20, 50, kinds, store.fetch) != store.log[20:50]
