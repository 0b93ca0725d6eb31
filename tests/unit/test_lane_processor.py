"""One processor stepping along one lane, on the memory backend."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tillflow.engine import (
    ConcurrencyConflict,
    EventRegistry,
    HandlerFailed,
    LaneProcessor,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
    State,
)
from tillflow.engine.lane_processor import FIRST_BATCH


def _append(store: MemoryEventStore, *types: str) -> None:
    store.append("s", [NewEvent(t, {"n": i}) for i, t in enumerate(types)])


def _count(event: RecordedEvent, session: Session) -> None:
    row = session.get("counts", event.type) or 0
    session.put("counts", event.type, row + 1)


def test_checkpoint_counts_scanned_events_including_ignored_ones() -> None:
    store = MemoryEventStore()
    _append(store, "A", "B", "B", "A", "B")
    lane = LaneProcessor(store, Processor("p", _count, types=frozenset({"A"})), 0)
    result = lane.step()
    assert (result.scanned, result.handled) == (5, 2)
    assert store.checkpoint("p", 0) == 5
    assert store.read_view("counts", "A") == b"2"
    assert store.read_view("counts", "B") is None
    assert lane.step().scanned == 0
    assert lane.state is State.IDLE


def test_batches_are_bounded_by_batch_size() -> None:
    store = MemoryEventStore()
    _append(store, *["A"] * 10)
    lane = LaneProcessor(store, Processor("p", _count, batch_size=4), 0)
    assert [lane.step().scanned for _ in range(4)] == [4, 4, 2, 0]
    assert store.read_view("counts", "A") == b"10"


def test_dependent_waits_on_its_upstream_checkpoint() -> None:
    store = MemoryEventStore()
    _append(store, "A", "A", "A")
    upstream = LaneProcessor(store, Processor("up", _count, batch_size=2), 0)
    down = LaneProcessor(store, Processor("down", _count, after=("up",)), 0)
    first = down.step()
    assert first.scanned == 0
    assert (down.state, down.waiting_on) == (State.WAITING, "up")
    upstream.step()
    assert down.step().scanned == 2
    assert down.step().waiting_on == "up"
    upstream.step()
    assert down.step().scanned == 1
    assert store.checkpoint("down", 0) == 3


def test_handler_failure_commits_the_events_before_and_stops_at_the_failing_one() -> None:
    store = MemoryEventStore()
    _append(store, "A", "A", "Poison", "A")

    def handler(event: RecordedEvent, session: Session) -> None:
        if event.type == "Poison":
            session.put("counts", "poisoned", True)
            raise ValueError("cannot digest")
        _count(event, session)

    lane = LaneProcessor(store, Processor("p", handler), 0)
    with pytest.raises(HandlerFailed) as caught:
        lane.step()
    failure = caught.value
    assert (failure.processor, failure.position, failure.event_type) == ("p", 3, "Poison")
    assert isinstance(failure.__cause__, ValueError)
    assert "cannot digest" in str(failure)
    assert store.checkpoint("p", 0) == 2
    assert store.read_view("counts", "A") == b"2"
    assert store.read_view("counts", "poisoned") is None
    assert lane.failed_event is not None and lane.failed_event.position == 3
    # a restart resumes at the failing event, not after it
    with pytest.raises(HandlerFailed):
        LaneProcessor(store, Processor("p", handler), 0).step()
    assert store.checkpoint("p", 0) == 2


def test_failure_on_the_first_event_of_a_batch_writes_nothing() -> None:
    store = MemoryEventStore()
    _append(store, "Poison", "A")

    def handler(event: RecordedEvent, session: Session) -> None:
        raise RuntimeError("no")

    with pytest.raises(HandlerFailed):
        LaneProcessor(store, Processor("p", handler), 0).step()
    assert store.checkpoints() == {}


def test_emitted_events_get_deterministic_ids_causation_and_correlation() -> None:
    store = MemoryEventStore()
    store.append("in", [NewEvent("Order", {"n": 1})])

    def handler(event: RecordedEvent, session: Session) -> None:
        if event.type == "Order":
            session.emit("out", "Shipped", {"part": 1})
            session.emit("out", "Shipped", {"part": 2})

    LaneProcessor(store, Processor("p", handler), 0).step()
    source = store.read_stream("in")[0]
    shipped = store.read_stream("out")
    assert [e.payload()["part"] for e in shipped] == [1, 2]
    assert all(e.causation_id == source.id for e in shipped)
    assert all(e.correlation_id == source.id for e in shipped)
    assert store.find_by_causation(source.id) == shipped

    # redelivery to a fresh store yields the same ids: a repeat can never emit twice
    again = MemoryEventStore()
    again.append("in", [NewEvent("Order", {"n": 1}, id=source.id)])
    LaneProcessor(again, Processor("p", handler), 0).step()
    assert [e.id for e in again.read_stream("out")] == [e.id for e in shipped]


def test_session_reads_its_own_buffered_writes_and_deletes() -> None:
    store = MemoryEventStore()
    _append(store, "Set", "Set", "Drop")
    seen: list[object] = []

    def handler(event: RecordedEvent, session: Session) -> None:
        if event.type == "Set":
            session.put("v", "k", (session.get("v", "k") or 0) + 1)
        else:
            seen.append(session.get("v", "k"))
            session.delete("v", "k")
            seen.append(session.get("v", "k"))

    LaneProcessor(store, Processor("p", handler), 0).step()
    assert seen == [2, None]
    assert store.read_view("v", "k") is None


def test_session_source_outside_a_handler_is_an_error() -> None:
    session = Session(MemoryEventStore(), "p")
    with pytest.raises(RuntimeError):
        _ = session.source


def test_emits_with_consecutive_expected_versions_commit_together() -> None:
    store = MemoryEventStore()
    store.append("stock", [NewEvent("Counted", {"level": 5})])
    store.append("in", [NewEvent("Order", {"n": 1}), NewEvent("Order", {"n": 2})])

    def handler(event: RecordedEvent, session: Session) -> None:
        if event.type != "Order":
            return
        version = session.scratch.get("version") or store.stream_version("stock")
        session.emit("stock", "Taken", event.payload(), expected_version=version)
        session.scratch["version"] = version + 1

    LaneProcessor(store, Processor("p", handler), 0).step()
    assert [e.type for e in store.read_stream("stock")] == ["Counted", "Taken", "Taken"]


def test_a_stale_expected_version_in_an_emit_fails_the_whole_batch() -> None:
    store = MemoryEventStore()
    store.append("in", [NewEvent("Order")])

    def handler(event: RecordedEvent, session: Session) -> None:
        if event.type == "Order":
            session.put("v", "seen", True)
            session.emit("stock", "Taken", {}, expected_version=0)
            if store.stream_version("stock") == 0:
                store.append("stock", [NewEvent("Received")])  # a command wins the race

    with pytest.raises(ConcurrencyConflict):  # redone in its turn, it loses every time
        LaneProcessor(store, Processor("p", handler), 0).step()
    assert store.checkpoint("p", 0) == 0
    assert store.read_view("v", "seen") is None
    assert [e.type for e in store.read_stream("stock")] == ["Received"]


def test_emitting_an_unregistered_type_fails_the_handler_at_that_event() -> None:
    store = MemoryEventStore(registry=EventRegistry(["Order", "Shipped"]))
    store.append("in", [NewEvent("Order"), NewEvent("Order")])

    def handler(event: RecordedEvent, session: Session) -> None:
        session.emit("out", "Shiped", {})

    with pytest.raises(HandlerFailed) as caught:
        LaneProcessor(store, Processor("p", handler), 0).step()
    assert caught.value.position == 1
    assert "Shiped" in str(caught.value)


def test_the_cross_batch_cache_is_emptied_when_a_batch_fails() -> None:
    store = MemoryEventStore()
    _append(store, "A", "Poison")

    def handler(event: RecordedEvent, session: Session) -> None:
        session.cache[event.position] = "seen"
        if event.type == "Poison":
            raise ValueError("no")

    lane = LaneProcessor(store, Processor("p", handler), 0)
    with pytest.raises(HandlerFailed):
        lane.step()
    assert lane.cache == {1: "seen"}  # the committed prefix's pass only
    assert store.checkpoint("p", 0) == 1


class _CountingJoins(MemoryEventStore):
    """Counts how often the upstream effects are read, and for how many sources."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        self.reads.append(len(sources))
        return super().emitted_by_many(processor, sources)


def test_a_handler_joining_each_event_to_upstream_effects_reads_them_once_per_batch() -> None:
    store = _CountingJoins()
    _append(store, *["A", "B"] * 20)

    def upstream(event: RecordedEvent, session: Session) -> None:
        for i in range(event.payload()["n"] % 3 + 1):
            session.emit(f"out-{event.type}", "Derived", {"of": event.payload()["n"], "i": i})

    joined: dict[int, list[dict[str, int]]] = {}

    def downstream(event: RecordedEvent, session: Session) -> None:
        effects = session.emitted_by("up")
        assert effects == store.emitted_by("up", event)
        joined[event.payload()["n"]] = [effect.payload() for effect in effects]

    LaneProcessor(store, Processor("up", upstream), 0).step()
    down = LaneProcessor(store, Processor("down", downstream, after=("up",), batch_size=50), 0)
    assert down.step().handled == 40
    assert store.reads == [20, 20]  # per type: the first "A" reads ahead for all 20, "B" too
    assert joined[7] == [{"of": 7, "i": 0}, {"of": 7, "i": 1}]
    assert len(joined) == 40


def test_batches_that_take_too_long_are_halved_and_quick_ones_doubled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane shares its thread with its processor's other lanes: a batch longer than
    ``BATCH_SECONDS`` makes the next one half as long (not below ``FIRST_BATCH``), a quick
    one or one that small twice as long (up to the batch size)."""
    store = MemoryEventStore()
    _append(store, *["E"] * 400)
    lane = LaneProcessor(store, Processor("p", _count, batch_size=100), 0)
    monkeypatch.setattr("tillflow.engine.lane_processor.BATCH_SECONDS", 0.0)  # all too long
    assert [lane.step().scanned for _ in range(3)] == [100, 50, FIRST_BATCH]
    monkeypatch.setattr("tillflow.engine.lane_processor.BATCH_SECONDS", 3600.0)  # all quick
    assert [lane.step().scanned for _ in range(2)] == [2 * FIRST_BATCH, 100]
    assert lane.step().scanned == 400 - (100 + 50 + 3 * FIRST_BATCH + 100)  # the rest


def test_a_scheduled_lane_sizes_its_batches_by_count_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simulator's lanes replay exactly: no batch is cut for taking long."""
    store = MemoryEventStore()
    _append(store, *["E"] * 300)
    lane = LaneProcessor(store, Processor("p", _count, batch_size=100), 0, scheduled=True)
    monkeypatch.setattr("tillflow.engine.lane_processor.BATCH_SECONDS", 0.0)
    assert [lane.step().scanned for _ in range(3)] == [100, 100, 100]
