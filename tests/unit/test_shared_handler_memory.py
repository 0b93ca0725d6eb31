"""The lanes of a processor in one runtime take turns in one thread, so they share their
handler memory (``Session.cache``): what one lane's batch committed, the next batch of
another lane builds on. With a memory per lane, a processor whose lanes write one stream
(Inventory: a product's stock, sold from every lane) lost most of its batches to its own
other lanes' commits on a store of several lanes, and redid them."""

from __future__ import annotations

from tillflow.engine import (
    BatchEffects,
    ConcurrencyConflict,
    MemoryEventStore,
    NewEvent,
    Processor,
    Receipt,
    RecordedEvent,
    Runtime,
    Session,
)
from tillflow.engine.lanes import lane_of

LANES = 4
ROUNDS = 3


def _tally(event: RecordedEvent, session: Session) -> None:
    """Count every sale on one stream, as Inventory counts stock: the stream's version from
    this processor's memory when it wrote it last, else from the store."""
    version = session.cache.get("tally")
    if version is None:
        version = session.store.stream_version("tally")
    session.emit("tally", "Counted", {"of": event.stream}, expected_version=version)
    session.cache["tally"] = version + 1


def _stream_on(lane: int) -> str:
    return next(f"till-{n}" for n in range(1000) if lane_of(f"till-{n}", LANES) == lane)


def test_a_processor_s_lanes_in_one_runtime_build_on_each_other_s_commits() -> None:
    store = MemoryEventStore(lane_count=LANES)
    refused: list[ConcurrencyConflict] = []
    commit = store.commit_batch

    def counting(
        processor: str, lane: int, expected: int, new: int, effects: BatchEffects
    ) -> Receipt:
        try:
            return commit(processor, lane, expected, new, effects)
        except ConcurrencyConflict as conflict:
            refused.append(conflict)
            raise

    store.commit_batch = counting  # type: ignore[method-assign,assignment]
    runtime = Runtime(store, [Processor("tally", _tally, types=frozenset({"Sold"}))])
    for _ in range(ROUNDS):
        for lane in range(LANES):
            store.append(_stream_on(lane), [NewEvent("Sold")])
            runtime.lanes["tally"][lane].step()

    assert store.stream_version("tally") == ROUNDS * LANES
    assert refused == [], f"{len(refused)} batches lost to the processor's own lanes"
