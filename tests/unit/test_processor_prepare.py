"""A processor's ``prepare(store, lane)``: run by whichever worker runs a lane, before the
handler sees the lane's first event there; again after it failed, never twice after it
succeeded."""

from __future__ import annotations

import pytest

from tillflow.engine import (
    EventStore,
    InvalidEvent,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    StoreUnavailable,
)
from tillflow.engine.lane_processor import LaneProcessor


class Journal:
    """What happened, in order: ``prepare <lane>`` and ``handle <lane>:<position>``."""

    def __init__(self, failures: int = 0) -> None:
        self.entries: list[str] = []
        self.failures = failures

    def prepare(self, store: EventStore, lane: int) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the store is away")
        self.entries.append(f"prepare {lane}")

    def handle(self, event: RecordedEvent, session: Session) -> None:
        self.entries.append(f"handle {event.lane}:{event.position}")

    def processor(self) -> Processor:
        return Processor("journal", self.handle, batch_size=2, prepare=self.prepare)


def _fill(store: EventStore, streams: int) -> None:
    for index in range(streams):
        store.append(f"s-{index}", [NewEvent("Happened", {"index": index})])


async def test_each_lane_is_prepared_once_before_its_first_event_is_handled() -> None:
    store = MemoryEventStore(lane_count=3)
    _fill(store, 30)
    journal = Journal()
    async with Runtime(store, [journal.processor()]) as runtime:
        await runtime.drain(timeout=30)
        _fill(store, 6)  # later batches: prepared already
        await runtime.drain(timeout=30)
    for lane in range(3):
        mine = [entry for entry in journal.entries if entry.split()[1].split(":")[0] == str(lane)]
        assert mine[0] == f"prepare {lane}" and mine.count(f"prepare {lane}") == 1, mine
        assert len(mine) == 1 + store.head(lane)


def test_a_failed_prepare_fails_the_step_and_runs_again_on_the_next() -> None:
    store = MemoryEventStore()
    _fill(store, 3)
    journal = Journal(failures=1)
    lane = LaneProcessor(store, journal.processor(), 0)
    with pytest.raises(StoreUnavailable):
        lane.step()
    assert journal.entries == [] and store.checkpoint("journal", 0) == 0
    assert lane.step().handled == 2
    assert lane.step().handled == 1
    assert journal.entries == ["prepare 0", "handle 0:1", "handle 0:2", "handle 0:3"]


async def test_a_runtime_retries_a_prepare_the_store_refused() -> None:
    store = MemoryEventStore()
    _fill(store, 3)
    journal = Journal(failures=2)
    async with Runtime(store, [journal.processor()]) as runtime:
        await runtime.drain(timeout=30)
    assert journal.entries == ["prepare 0", "handle 0:1", "handle 0:2", "handle 0:3"]


def test_a_lane_that_came_back_from_another_worker_is_prepared_again() -> None:
    store = MemoryEventStore()
    _fill(store, 2)
    journal = Journal()
    lane = LaneProcessor(store, journal.processor(), 0)
    lane.step()
    lane.step()
    lane.taken_over()
    _fill(store, 1)
    lane.step()
    assert journal.entries == [
        "prepare 0",
        "handle 0:1",
        "handle 0:2",
        "prepare 0",
        "handle 0:3",
    ]


def test_a_prepare_that_is_not_a_function_is_refused_naming_it() -> None:
    with pytest.raises(InvalidEvent, match="prepare='later'"):
        Processor("journal", Journal().handle, prepare="later")  # type: ignore[arg-type]
