"""A lane whose batches keep losing to concurrent commits (workers sharing a group's
lanes both write a row such as the report's totals) makes its batches smaller until they
land, then grows them back: a lane with a backlog is not starved by lanes committing
small batches to the same rows."""

from __future__ import annotations

import asyncio
import time

from tillflow.engine import (
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
)
from tillflow.engine.errors import ViewRowChanged
from tillflow.engine.faults import FaultyStore

WINS_UPTO = 8
"""The most positions a batch may span and still commit before a rival's batch does."""
EVENTS = 400


class RivalledStore(FaultyStore):
    """A memory store where a rival commits to the batch's rows whenever a batch spans
    more than :data:`WINS_UPTO` positions (it takes too long to win)."""

    def __init__(self, inner: MemoryEventStore) -> None:
        super().__init__(inner, self._before_commit)
        self.lost = 0
        self.spans: list[int] = []

    def _before_commit(self, processor: str, lane: int, expected: int, new: int) -> None:
        if new - expected > WINS_UPTO:
            self.lost += 1
            raise ViewRowChanged(processor, "totals", "all")
        self.spans.append(new - expected)


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", "all", (session.get("counts", "all") or 0) + 1)


async def test_a_lane_losing_every_large_batch_shrinks_them_until_they_land() -> None:
    inner = MemoryEventStore()
    store = RivalledStore(inner)
    inner.append("s", [NewEvent("A")] * EVENTS)
    started = time.monotonic()
    async with Runtime(store, [Processor("p", _count, batch_size=1000)]):
        while inner.checkpoint("p", 0) < EVENTS:
            assert time.monotonic() - started < 30, (
                f"starved: checkpoint {inner.checkpoint('p', 0)} after {store.lost} lost batches"
            )
            await asyncio.sleep(0.01)
    assert inner.read_view("counts", "all") == str(EVENTS).encode()  # each event once
    assert store.lost >= 2
    assert max(store.spans) <= WINS_UPTO


def test_the_limit_is_cut_by_a_loss_and_grows_back_by_landing() -> None:
    inner = MemoryEventStore()
    inner.append("s", [NewEvent("A")] * 100)
    runtime_free = Runtime(inner, [Processor("p", _count, batch_size=64)])
    [lane] = runtime_free.lanes["p"]
    lane.contended()
    lane.contended()
    assert lane.batch_limit == 4
    assert lane.step().scanned == 4  # the next batch spans the cut limit
    assert lane.batch_limit == 8
    for _ in range(4):
        lane.step()
    assert lane.batch_limit == 64  # back to the processor's batch size, never above
