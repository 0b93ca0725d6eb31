"""The contract every event store backend keeps, written once.

A backend's test module subclasses :class:`EventStoreContract` and says how to make a store
(see ``test_memory_store.py``, ``test_sqlite_store.py``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.contract.parking_contract import ParkingContract
from tests.contract.upcasting_contract import UpcastingContract
from tillflow.engine import (
    ANY_VERSION,
    NO_STREAM,
    AppendRequest,
    BatchEffects,
    CheckpointConflict,
    CheckpointPassed,
    ConcurrencyConflict,
    Emitted,
    EventIdReused,
    EventRegistry,
    EventStore,
    InvalidEvent,
    NewEvent,
    Receipt,
    RecordedEvent,
    UnknownEventType,
    id_from_key,
    new_event_id,
)
from tillflow.engine.ids import derived_id_at, derived_id_base
from tillflow.engine.store import CheckpointProgress


def _event(n: int, event_type: str = "Happened", event_id: bytes | None = None) -> NewEvent:
    return NewEvent(type=event_type, data={"n": n}, id=event_id)


class EventStoreContract(ParkingContract, UpcastingContract):
    """Tests any backend must pass. Subclasses implement :meth:`make_store`."""

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        store = self.make_store()
        yield store
        store.close()

    # -- append and read -------------------------------------------------------------------

    def test_append_returns_receipt_with_positions_and_stream_version(
        self, store: EventStore
    ) -> None:
        receipt = store.append("a", [_event(1), _event(2)], NO_STREAM)
        lane = next(iter(receipt.positions))
        assert receipt.positions[lane] == store.head(lane)
        assert receipt.streams == {"a": 2}

    def test_recorded_events_carry_every_field(self, store: EventStore) -> None:
        cause, correlation = new_event_id(), new_event_id()
        event = NewEvent(
            "Happened",
            {"n": 7, "name": "ß✓"},
            id_from_key("t", "1"),
            schema_version=3,
            causation_id=cause,
            correlation_id=correlation,
        )
        store.append("s-1", [event])
        [recorded] = store.read_stream("s-1")
        assert recorded.id == id_from_key("t", "1")
        assert (recorded.stream, recorded.version, recorded.type) == ("s-1", 1, "Happened")
        assert recorded.schema_version == 3
        assert recorded.payload() == {"n": 7, "name": "ß✓"}
        assert (recorded.causation_id, recorded.correlation_id) == (cause, correlation)
        assert recorded.recorded_at > 0
        assert store.read(recorded.lane, 0) == [recorded]

    def test_positions_are_dense_per_lane_in_commit_order(self, store: EventStore) -> None:
        for n in range(30):
            store.append(f"stream-{n % 7}", [_event(n), _event(n + 100)])
        for lane in range(store.lane_count):
            events = store.read(lane, 0)
            assert [e.position for e in events] == list(range(1, len(events) + 1))
            assert store.head(lane) == len(events)
        total = sum(store.head(lane) for lane in range(store.lane_count))
        assert total == 60

    def test_stream_versions_count_from_one_in_order(self, store: EventStore) -> None:
        for n in range(5):
            store.append("s", [_event(n)])
        events = store.read_stream("s")
        assert [e.version for e in events] == [1, 2, 3, 4, 5]
        assert [e.payload()["n"] for e in events] == [0, 1, 2, 3, 4]
        assert store.stream_version("s") == 5
        assert [e.version for e in store.read_stream("s", after_version=3)] == [4, 5]
        assert store.stream_version("nothing") == 0
        assert store.read_stream("nothing") == []

    def test_read_between_positions_with_type_filter_and_limit(self, store: EventStore) -> None:
        store.append("s", [_event(n, "Even" if n % 2 == 0 else "Odd") for n in range(10)])
        lane = store.read_stream("s")[0].lane
        assert [e.position for e in store.read(lane, 2, 6)] == [3, 4, 5, 6]
        assert [e.payload()["n"] for e in store.read(lane, 0, types=["Odd"])] == [1, 3, 5, 7, 9]
        assert [e.position for e in store.read(lane, 0, 6, types={"Even"})] == [1, 3, 5]
        assert len(store.read(lane, 0, limit=4)) == 4
        assert store.read(lane, 0, types=[]) == []
        assert store.read(lane, 10) == []

    def test_iter_all_reads_everything_in_bounded_batches(self, store: EventStore) -> None:
        store.append("s", [_event(n) for n in range(25)])
        lane = store.read_stream("s")[0].lane
        assert [e.position for e in store.iter_all(lane, batch=4)] == list(range(1, 26))

    def test_find_by_causation_and_get_event(self, store: EventStore) -> None:
        cause = new_event_id()
        store.append("x", [NewEvent("A", 1, causation_id=cause), NewEvent("B", 2)])
        store.append("y", [NewEvent("C", 3, causation_id=cause)])
        found = store.find_by_causation(cause)
        assert sorted(e.type for e in found) == ["A", "C"]
        assert store.get_event(found[0].id) == found[0]
        assert store.get_event(new_event_id()) is None
        assert store.find_by_causation(new_event_id()) == []

    # -- optimistic concurrency ------------------------------------------------------------

    def test_wrong_expected_version_is_a_conflict_naming_stream_and_versions(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(1)], NO_STREAM)
        with pytest.raises(ConcurrencyConflict) as caught:
            store.append("s", [_event(2)], NO_STREAM)
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("s", 0, 1)
        assert "'s'" in str(caught.value)
        assert store.stream_version("s") == 1

    def test_conflict_writes_nothing(self, store: EventStore) -> None:
        store.append("s", [_event(1)])
        heads = store.heads()
        with pytest.raises(ConcurrencyConflict):
            store.append("s", [_event(2), _event(3)], 5)
        assert store.heads() == heads

    def test_concurrent_writers_with_the_same_expected_version_one_wins(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(0)])
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def write(n: int) -> None:
            barrier.wait()
            try:
                store.append("s", [_event(n)], 1)
                outcomes.append("ok")
            except ConcurrencyConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
        assert store.stream_version("s") == 2

    # -- idempotency -----------------------------------------------------------------------

    def test_same_ids_same_content_returns_the_original_receipt(self, store: EventStore) -> None:
        events = [
            _event(1, event_id=id_from_key("k", "1")),
            _event(2, event_id=id_from_key("k", "2")),
        ]
        first = store.append("s", events, NO_STREAM)
        store.append("other", [_event(9)])
        again = store.append("s", events, NO_STREAM)
        also = store.append("s", events, ANY_VERSION)
        assert again == first
        assert also == first
        assert store.stream_version("s") == 2

    def test_new_stream_appends_sharing_a_group_each_get_the_right_outcome(
        self, store: EventStore
    ) -> None:
        kept = [_event(1, event_id=id_from_key("k", "kept"))]
        original = store.append("s", kept, NO_STREAM)
        store.append("taken", [_event(2)])
        before = sum(store.head(lane) for lane in range(store.lane_count))
        outcomes = store.append_many(
            [
                AppendRequest("fresh-1", [_event(3, event_id=id_from_key("k", "f1"))], NO_STREAM),
                AppendRequest("s", kept, NO_STREAM),  # a retry
                AppendRequest("new-elsewhere", kept, NO_STREAM),  # its id is s's
                AppendRequest("taken", [_event(4)], NO_STREAM),
                AppendRequest("fresh-2", [_event(5)], NO_STREAM),
            ]
        )
        assert isinstance(outcomes[0], Receipt) and outcomes[0].streams == {"fresh-1": 1}
        assert outcomes[1] == original
        assert isinstance(outcomes[2], EventIdReused) and outcomes[2].field == "stream"
        assert isinstance(outcomes[3], ConcurrencyConflict) and outcomes[3].actual == 1
        assert isinstance(outcomes[4], Receipt) and outcomes[4].streams == {"fresh-2": 1}
        assert sum(store.head(lane) for lane in range(store.lane_count)) == before + 2
        assert store.stream_version("new-elsewhere") == 0

    def test_reused_id_with_different_content_is_refused(self, store: EventStore) -> None:
        event_id = id_from_key("k", "1")
        store.append("s", [_event(1, event_id=event_id)])
        heads = store.heads()
        with pytest.raises(EventIdReused) as caught:
            store.append("s", [_event(2, event_id=event_id)])
        assert caught.value.field == "data"
        with pytest.raises(EventIdReused) as caught:
            store.append("elsewhere", [_event(1, event_id=event_id)])
        assert caught.value.field == "stream"
        with pytest.raises(EventIdReused):
            store.append("s", [_event(1, event_id=event_id), _event(5)])
        assert store.heads() == heads

    # -- bad input -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("stream", "event", "field"),
        [
            ("", NewEvent("A"), "stream"),
            ("x" * 600, NewEvent("A"), "stream"),
            ("s", NewEvent(""), "type"),
            ("s", NewEvent("A", id=b"short"), "id"),
            ("s", NewEvent("A", schema_version=0), "schema_version"),
            ("s", NewEvent("A", data=object()), "data"),
        ],
    )
    def test_malformed_events_are_refused_naming_the_field(
        self, store: EventStore, stream: str, event: NewEvent, field: str
    ) -> None:
        with pytest.raises(InvalidEvent) as caught:
            store.append(stream, [event])
        assert caught.value.field == field
        assert store.heads() == dict.fromkeys(range(store.lane_count), 0)

    def test_unknown_event_type_is_refused_with_a_registry(self) -> None:
        store = self.make_store(EventRegistry(["Known"]))
        try:
            store.append("s", [NewEvent("Known")])
            with pytest.raises(UnknownEventType) as caught:
                store.append("s", [NewEvent("Known"), NewEvent("Unknown")])
            assert caught.value.event_type == "Unknown"
            assert store.stream_version("s") == 1
        finally:
            store.close()

    # -- checkpoints, effects, views -------------------------------------------------------

    def test_commit_batch_moves_checkpoint_with_effects_atomically(self, store: EventStore) -> None:
        store.append("s", [_event(1)])
        effects = BatchEffects(
            emitted=[Emitted("out", [NewEvent("Derived", {"x": 1}, id=new_event_id())])],
            views={("totals", "a"): b'{"sum":1}', ("totals", "b"): b"2"},
        )
        receipt = store.commit_batch("p", 0, 0, 1, effects)
        assert store.checkpoint("p", 0) == 1
        assert store.checkpoints() == {"p": {0: 1}}
        assert receipt.streams == {"out": 1}
        assert store.read_view("totals", "a") == b'{"sum":1}'
        assert list(store.view_rows("totals")) == [("a", b'{"sum":1}'), ("b", b"2")]
        store.commit_batch("p", 0, 1, 2, BatchEffects(views={("totals", "a"): None}))
        assert store.read_view("totals", "a") is None

    def test_checkpoint_compare_and_set_refuses_a_stale_expectation(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(1), _event(2)])
        store.commit_batch("p", 0, 0, 1, BatchEffects())
        stale = BatchEffects(
            emitted=[Emitted("out", [NewEvent("Derived", id=new_event_id())])],
            views={("v", "k"): b"1"},
        )
        with pytest.raises(CheckpointConflict) as caught:
            store.commit_batch("p", 0, 0, 2, stale)
        assert (caught.value.expected, caught.value.actual) == (0, 1)
        assert store.checkpoint("p", 0) == 1
        assert store.read_view("v", "k") is None
        assert store.stream_version("out") == 0
        with pytest.raises(CheckpointConflict):
            store.commit_batch("never-ran", 0, 3, 4, BatchEffects())

    def test_a_batch_bound_by_another_checkpoint_commits_only_while_it_has_not_passed(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(1), _event(2), _event(3)])
        store.commit_batch("live", 0, 0, 2, BatchEffects())
        bound = {("live", 0): 2, ("never-ran", 0): 0}
        store.commit_batch(
            "switch", 0, 0, 1, BatchEffects(views={("v", "k"): b"1"}, not_past=bound)
        )
        assert (store.checkpoint("switch", 0), store.read_view("v", "k")) == (1, b"1")
        store.commit_batch("live", 0, 2, 3, BatchEffects())
        passed = BatchEffects(
            emitted=[Emitted("out", [NewEvent("Derived", id=new_event_id())])],
            views={("v", "k"): b"2"},
            not_past={("live", 0): 2},
        )
        with pytest.raises(CheckpointPassed) as caught:
            store.commit_batch("switch", 0, 1, 2, passed)
        assert (caught.value.processor, caught.value.expected, caught.value.actual) == (
            "live",
            2,
            3,
        )
        assert "past 2" in str(caught.value)
        assert (store.checkpoint("switch", 0), store.read_view("v", "k")) == (1, b"1")
        assert store.stream_version("out") == 0
        assert "never-ran" not in store.checkpoints(), "a bound writes no checkpoint"

    def test_checkpoint_progress_says_when_the_checkpoint_last_moved(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(1), _event(2)])
        assert store.checkpoint_progress("p", 0) == CheckpointProgress(0, None)
        before = time.time()
        store.commit_batch("p", 0, 0, 1, BatchEffects())
        first = store.checkpoint_progress("p", 0)
        assert first.position == 1
        assert first.moved_at is not None and before - 1 <= first.moved_at <= time.time() + 1
        with pytest.raises(CheckpointConflict):
            store.commit_batch("p", 0, 0, 2, BatchEffects())
        assert store.checkpoint_progress("p", 0) == first  # a refused commit moves nothing
        store.commit_batch("p", 0, 1, 2, BatchEffects())
        second = store.checkpoint_progress("p", 0)
        assert second.position == 2
        assert second.moved_at is not None and second.moved_at >= first.moved_at

    def test_failed_commit_batch_writes_none_of_its_effects(self, store: EventStore) -> None:
        store.append("out", [_event(1)])
        effects = BatchEffects(
            emitted=[
                Emitted("fresh", [NewEvent("Derived", id=new_event_id())]),
                Emitted("out", [NewEvent("Derived", id=new_event_id())], expected_version=0),
            ],
            views={("v", "k"): b"1"},
        )
        with pytest.raises(ConcurrencyConflict):
            store.commit_batch("p", 0, 0, 1, effects)
        assert store.checkpoint("p", 0) == 0
        assert store.stream_version("fresh") == 0
        assert store.read_view("v", "k") is None

    def test_commit_listener_is_called_and_removable(self, store: EventStore) -> None:
        calls: list[int] = []
        remove = store.add_commit_listener(lambda: calls.append(1))
        store.append("s", [_event(1)])
        assert calls
        remove()
        before = len(calls)
        store.append("s", [_event(2)])
        assert len(calls) == before

    async def test_concurrent_async_appends_each_get_their_own_receipt(
        self, store: EventStore
    ) -> None:
        async def write(n: int) -> Receipt:
            return await store.append_async(f"w-{n}", [_event(n)], NO_STREAM)

        receipts = await asyncio.gather(*(write(n) for n in range(64)))
        assert all(r.streams == {f"w-{n}": 1} for n, r in enumerate(receipts))
        per_lane: dict[int, list[int]] = {}
        for r in receipts:
            for lane, position in r.positions.items():
                per_lane.setdefault(lane, []).append(position)
        for lane, positions in per_lane.items():
            assert sorted(positions) == list(range(1, store.head(lane) + 1))

    async def test_conflicts_among_grouped_appends_stay_with_their_caller(
        self, store: EventStore
    ) -> None:
        store.append("contested", [_event(0)])

        async def write(n: int) -> str:
            expected = 1 if n % 2 == 0 else 0
            try:
                await store.append_async(f"own-{n}", [_event(n)], NO_STREAM)
                await store.append_async("contested", [_event(n)], expected)
            except ConcurrencyConflict:
                return "conflict"
            return "ok"

        outcomes = await asyncio.gather(*(write(n) for n in range(20)))
        assert outcomes.count("ok") == 1
        assert all(store.stream_version(f"own-{n}") == 1 for n in range(20))
        assert store.stream_version("contested") == 2

    def test_last_event_and_read_stream_up_to_a_version(self, store: EventStore) -> None:
        assert store.last_event("s") is None
        store.append("s", [_event(n) for n in range(5)])
        store.append("other", [_event(99)])
        last = store.last_event("s")
        assert last is not None and (last.version, last.payload()) == (5, {"n": 4})
        assert [e.version for e in store.read_stream("s", 1, 3)] == [2, 3]
        assert store.read_stream("s", 3, 3) == []

    def test_append_many_gives_each_request_its_own_outcome(self, store: EventStore) -> None:
        store.append("taken", [_event(0)])
        outcomes = store.append_many(
            [
                AppendRequest("a", [_event(1)], NO_STREAM),
                AppendRequest("taken", [_event(2)], NO_STREAM),
                AppendRequest("b", [_event(3), _event(4)]),
            ]
        )
        assert isinstance(outcomes[0], Receipt) and outcomes[0].streams == {"a": 1}
        assert isinstance(outcomes[1], ConcurrencyConflict)
        assert isinstance(outcomes[2], Receipt) and outcomes[2].streams == {"b": 2}
        assert store.stream_version("taken") == 1
        assert sum(store.head(lane) for lane in range(store.lane_count)) == 4

    def test_append_many_refuses_a_malformed_request_alone(self, store: EventStore) -> None:
        outcomes = store.append_many(
            [
                AppendRequest("a", [_event(1)]),
                AppendRequest("", [_event(2)]),
                AppendRequest("b", [_event(3)]),
            ]
        )
        assert isinstance(outcomes[0], Receipt) and isinstance(outcomes[2], Receipt)
        assert isinstance(outcomes[1], InvalidEvent) and outcomes[1].field == "stream"
        assert sum(store.head(lane) for lane in range(store.lane_count)) == 2

    def test_one_id_twice_in_one_group_is_recorded_once(self, store: EventStore) -> None:
        event_id = id_from_key("till", "retry")
        same = [_event(1, event_id=event_id)]
        other = [_event(2, event_id=event_id)]
        outcomes = store.append_many(
            [AppendRequest("s", same), AppendRequest("s", same), AppendRequest("s", other)]
        )
        assert isinstance(outcomes[0], Receipt)
        assert outcomes[1] == outcomes[0]
        assert isinstance(outcomes[2], EventIdReused)
        assert store.stream_version("s") == 1

    async def test_a_till_retrying_while_its_first_try_is_in_flight_gets_one_event(
        self, store: EventStore
    ) -> None:
        events = [_event(n, event_id=id_from_key("checkout", str(n))) for n in range(3)]

        async def attempt() -> Receipt:
            return await store.append_async("checkout-1", events, NO_STREAM)

        receipts = await asyncio.gather(*(attempt() for _ in range(10)))
        assert all(receipt == receipts[0] for receipt in receipts)
        assert store.stream_version("checkout-1") == 3

    def test_emitted_by_many_agrees_with_emitted_by_for_every_source(
        self, store: EventStore
    ) -> None:
        store.append("in", [_event(n) for n in range(450)])  # more than one read's worth
        sources = store.read_stream("in")
        for processor, every in (("a", 3), ("b", 1)):
            emitted = []
            for number, source in enumerate(sources):
                if number % every:
                    continue
                base = derived_id_base(processor, source.id)
                events = [
                    NewEvent(
                        "Derived",
                        {"n": number, "i": i},
                        id=derived_id_at(base, i),
                        causation_id=source.id,
                    )
                    for i in range(1 + number % 3)
                ]
                emitted.append(Emitted(f"out-{processor}", events))
            store.commit_batch(processor, 0, 0, 450, BatchEffects(emitted))
        many = store.emitted_by_many("a", sources)
        assert set(many) == {source.id for source in sources}
        for number, source in enumerate(sources):
            assert many[source.id] == store.emitted_by("a", source)
            expected = [] if number % 3 else [{"n": number, "i": i} for i in range(1 + number % 3)]
            assert [event.payload() for event in many[source.id]] == expected
        assert store.emitted_by_many("a", []) == {}

    def test_emitted_by_finds_exactly_one_processors_effects_of_one_event(
        self, store: EventStore
    ) -> None:
        store.append("in", [_event(1), _event(2)])
        first, second = store.read_stream("in")

        def effects(processor: str, source: RecordedEvent, count: int) -> Emitted:
            base = derived_id_base(processor, source.id)
            return Emitted(
                f"out-{processor}",
                [
                    NewEvent("Derived", {"i": i}, id=derived_id_at(base, i), causation_id=source.id)
                    for i in range(count)
                ],
            )

        assert store.emitted_by("a", first) == []
        store.commit_batch(
            "a", 0, 0, 2, BatchEffects([effects("a", first, 3), effects("a", second, 1)])
        )
        store.commit_batch("b", 0, 0, 2, BatchEffects([effects("b", first, 2)]))
        by_a = store.emitted_by("a", first)
        assert [e.payload()["i"] for e in by_a] == [0, 1, 2]
        assert all(e.stream == "out-a" for e in by_a)
        assert [e.stream for e in store.emitted_by("b", first)] == ["out-b", "out-b"]
        assert len(store.emitted_by("a", second)) == 1
        assert store.emitted_by("b", second) == []
        assert len(store.find_by_causation(first.id)) == 5
