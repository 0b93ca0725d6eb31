"""The parked rows' part of the store contract: a park is committed with the checkpoint
that passes the event, or not at all, on every backend (mixed into
:class:`~tests.contract.store_contract.EventStoreContract`)."""

from __future__ import annotations

import pytest

from tillflow.engine import (
    BatchEffects,
    CheckpointConflict,
    EventRegistry,
    EventStore,
    HandlerFailed,
    LaneProcessor,
    NewEvent,
    Parking,
    Processor,
    RecordedEvent,
    Session,
)
from tillflow.engine.dead_letters import parked_keys, request
from tillflow.engine.parked_lane import attach_parking
from tillflow.engine.parking import DEAD_LETTER_EVENTS, read_parked

PARK_AT_ONCE = Parking(max_attempts=1, base=0.0, jitter=0.0)


def _refuse_bad(event: RecordedEvent, session: Session) -> None:
    if event.payload()["bad"]:
        raise ValueError(f"bad {event.stream}")
    session.put("handled", event.stream, event.position)


class Flaky:
    """Fails on the streams in ``bad``; records per stream the positions handled, in order."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.bad: set[str] = set()

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        if event.stream in self.bad:
            raise ValueError(f"bad {event.stream}")
        done = session.get(self.view, event.stream) or []
        session.put(self.view, event.stream, [*done, event.position])


def _lane(store: EventStore, lane: int) -> LaneProcessor:
    declared = Processor("p", _refuse_bad, frozenset({"Happened"}), parking=PARK_AT_ONCE)
    lanes = {"p": [LaneProcessor(store, declared, lane)]}
    attach_parking(lanes, {"p": declared})
    return lanes["p"][0]


def _park_first(store: EventStore, lane_processor: LaneProcessor) -> None:
    with pytest.raises(HandlerFailed):
        lane_processor.step()
    lane_processor.park()


class ParkingContract:
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        raise NotImplementedError

    def test_a_park_moves_the_checkpoint_with_the_parked_row(self, store: EventStore) -> None:
        receipt = store.append("k-1", [NewEvent("Happened", {"bad": True})])
        ((lane, position),) = receipt.positions.items()
        store.append("k-1", [NewEvent("Happened", {"bad": False})])
        lane_processor = _lane(store, lane)
        _park_first(store, lane_processor)
        assert store.checkpoint("p", lane) == position
        letter = read_parked(store, "p", lane).letters["k-1"]
        assert (letter.position, letter.error) == (position, "ValueError: bad k-1")
        _lane(store, lane).step()  # a fresh lane reads the row and holds the key
        assert read_parked(store, "p", lane).letters["k-1"].held == [position + 1]
        assert store.read_view("handled", "k-1") is None

    def test_a_refused_park_parks_nothing(self, store: EventStore) -> None:
        receipt = store.append("k-2", [NewEvent("Happened", {"bad": True})])
        ((lane, position),) = receipt.positions.items()
        lane_processor = _lane(store, lane)
        with pytest.raises(HandlerFailed):
            lane_processor.step()
        store.commit_batch("p", lane, position - 1, position, BatchEffects())
        with pytest.raises(CheckpointConflict):
            lane_processor.park()
        assert read_parked(store, "p", lane).letters == {}

    def test_parked_keys_of_every_lane_are_listed_and_requests_recorded(self) -> None:
        store = self.make_store(EventRegistry({"Happened": dict, **DEAD_LETTER_EVENTS}))
        try:
            lanes: dict[int, int] = {}
            for number in range(6):
                receipt = store.append(f"s-{number}", [NewEvent("Happened", {"bad": True})])
                lanes.update(receipt.positions)
            for lane in lanes:
                lane_processor = _lane(store, lane)
                while store.checkpoint("p", lane) < store.head(lane):
                    _park_first(store, lane_processor)
            listed = parked_keys(store, ["p"])
            assert sorted(each.letter.key for each in listed) == [f"s-{n}" for n in range(6)]
            request(store, "p", listed[0].letter.event_id, "skip", by="ops", reason="test")
            assert [each.pending for each in parked_keys(store, ["p"])].count("skip") == 1
        finally:
            store.close()

    def test_a_dependant_holds_the_parked_key_and_follows_a_retry_in_order(
        self, store: EventStore
    ) -> None:
        up_handler, down_handler = Flaky("up"), Flaky("down")
        up_handler.bad.add("k-a")
        declared = {
            "up": Processor("up", up_handler, frozenset({"Happened"}), parking=PARK_AT_ONCE),
            "down": Processor("down", down_handler, frozenset({"Happened"}), after=("up",)),
        }
        positions: dict[str, list[int]] = {"k-a": [], "k-b": []}
        lanes_used: set[int] = set()
        for stream in ("k-a", "k-b", "k-a", "k-b", "k-a"):
            receipt = store.append(stream, [NewEvent("Happened", {"bad": False})])
            ((lane, position),) = receipt.positions.items()
            positions[stream].append(position)
            lanes_used.add(lane)
        lanes = {
            name: [LaneProcessor(store, each, lane) for lane in sorted(lanes_used)]
            for name, each in declared.items()
        }
        attach_parking(lanes, declared)

        def step_all(name: str) -> None:
            for lane_processor in lanes[name]:
                try:
                    lane_processor.step()
                except HandlerFailed:
                    lane_processor.park()
                    lane_processor.step()

        step_all("up")
        step_all("down")
        assert store.read_view("down", "k-a") is None
        assert store.read_view("down", "k-b") == f"{positions['k-b']}".replace(" ", "").encode()
        up_handler.bad.clear()
        (parked,) = parked_keys(store, ["up"])
        request(store, "up", parked.letter.event_id, "retry", by="ops")
        step_all("down")  # not yet: the upstream has not retried
        assert store.read_view("down", "k-a") is None
        step_all("up")
        step_all("down")
        expected = f"{positions['k-a']}".replace(" ", "").encode()
        assert store.read_view("up", "k-a") == expected
        assert store.read_view("down", "k-a") == expected
        assert parked_keys(store, ["up", "down"]) == []
