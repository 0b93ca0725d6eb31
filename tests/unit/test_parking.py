"""Parking keeps per-key order: a failing key's later events wait behind it, other keys
flow on, and an operator's retry or skip lets the queue go in order (memory backend)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tillflow.engine import (
    DeadLetterBusy,
    DeadLetterResolved,
    HandlerFailed,
    InvalidEvent,
    LaneProcessor,
    MemoryEventStore,
    NewEvent,
    Parking,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    UnknownDeadLetter,
)
from tillflow.engine.dead_letters import find_parked, held_events, parked_keys, request
from tillflow.engine.parked_lane import attach_parking
from tillflow.engine.parking import dead_letter_stream, read_parked

NO_WAIT = Parking(max_attempts=2, base=0.0, jitter=0.0)
HAPPENED = frozenset({"Happened"})


class Poisoned:
    """A handler that logs what it handled, in order, and fails on events named bad."""

    def __init__(self, view: str = "log") -> None:
        self.view = view
        self.bad: set[str] = set()

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        name = f"{event.stream}{event.payload()['n']}"
        if name in self.bad:
            raise ValueError(f"cannot digest {name}")
        log = session.get(self.view, "order") or []
        session.put(self.view, "order", [*log, name])


def _lanes(store: MemoryEventStore, *declared: Processor) -> dict[str, LaneProcessor]:
    lanes = {each.name: [LaneProcessor(store, each, 0)] for each in declared}
    attach_parking(lanes, {each.name: each for each in declared})
    return {name: each[0] for name, each in lanes.items()}


def _order(store: MemoryEventStore, view: str = "log") -> list[str]:
    raw = store.read_view(view, "order")
    return [] if raw is None else list(json.loads(raw))


def _append(store: MemoryEventStore, *names: str) -> None:
    for name in names:
        store.append(name[0], [NewEvent("Happened", {"n": int(name[1:])})])


def _fail_until_parked(lane: LaneProcessor) -> None:
    """What the runtime does: retry until the policy gives up, then park."""
    parking = lane.processor.parking
    assert parking is not None
    while True:
        with pytest.raises(HandlerFailed):
            lane.step()
        if parking.retry_after(lane.attempts) is None:
            lane.park()
            return


def _parked_a() -> tuple[MemoryEventStore, Poisoned, LaneProcessor]:
    """a1 fails; b1, a2, b2, a3 follow: a parked with a2 and a3 held, b handled."""
    store = MemoryEventStore()
    handler = Poisoned()
    handler.bad.add("a1")
    lane = _lanes(store, Processor("p", handler, HAPPENED, parking=NO_WAIT))["p"]
    _append(store, "a1", "b1", "a2", "b2", "a3")
    _fail_until_parked(lane)
    lane.step()
    return store, handler, lane


def test_a_failing_key_waits_while_other_keys_flow_on() -> None:
    store, _, _ = _parked_a()
    assert _order(store) == ["b1", "b2"]
    assert store.checkpoint("p", 0) == 5
    letter = read_parked(store, "p", 0).letters["a"]
    assert (letter.position, letter.held, letter.attempts) == (1, [3, 5], 2)
    assert letter.error == "ValueError: cannot digest a1"
    assert "Traceback" in letter.traceback
    assert [event.position for event in held_events(store, letter)] == [3, 5]


def test_the_checkpoint_passes_a_failure_only_with_it_parked() -> None:
    store = MemoryEventStore()
    handler = Poisoned()
    handler.bad.add("a1")
    lane = _lanes(store, Processor("p", handler, HAPPENED, parking=NO_WAIT))["p"]
    _append(store, "a1")
    with pytest.raises(HandlerFailed):
        lane.step()
    assert store.checkpoint("p", 0) == 0
    assert read_parked(store, "p", 0).letters == {}
    _fail_until_parked(lane)
    assert store.checkpoint("p", 0) == 1
    assert list(read_parked(store, "p", 0).letters) == ["a"]


def test_a_restarted_lane_keeps_holding_the_parked_key() -> None:
    store, handler, _ = _parked_a()
    _append(store, "a4", "b3")
    again = _lanes(store, Processor("p", handler, HAPPENED, parking=NO_WAIT))["p"]
    again.step()
    assert _order(store) == ["b1", "b2", "b3"]
    assert read_parked(store, "p", 0).letters["a"].held == [3, 5, 6]


def test_a_retry_after_the_fix_handles_the_queue_in_order() -> None:
    store, handler, lane = _parked_a()
    handler.bad.clear()
    dead_letter = parked_keys(store, ["p"])[0].letter.event_id
    request(store, "p", dead_letter, "retry", by="ops")
    assert find_parked(store, "p", dead_letter).pending == "retry"
    lane.step()
    assert _order(store) == ["b1", "b2", "a1", "a2", "a3"]
    assert read_parked(store, "p", 0).letters == {}
    _append(store, "a4")
    lane.step()
    assert _order(store)[-1] == "a4"
    with pytest.raises(DeadLetterResolved):
        request(store, "p", dead_letter, "retry", by="ops")


def test_a_retry_that_fails_again_keeps_the_key_parked() -> None:
    store, _, lane = _parked_a()
    (parked,) = parked_keys(store, ["p"])
    request(store, "p", parked.letter.event_id, "retry", by="ops")
    lane.step()
    letter = read_parked(store, "p", 0).letters["a"]
    assert (letter.position, letter.held, letter.attempts) == (1, [3, 5], 3)
    assert _order(store) == ["b1", "b2"]
    assert parked_keys(store, ["p"])[0].pending is None


def test_a_failure_inside_the_queue_becomes_the_new_head() -> None:
    store, handler, lane = _parked_a()
    handler.bad = {"a2"}
    request(store, "p", parked_keys(store, ["p"])[0].letter.event_id, "retry", by="ops")
    lane.step()
    assert _order(store) == ["b1", "b2", "a1"]
    letter = read_parked(store, "p", 0).letters["a"]
    assert (letter.position, letter.held, letter.attempts) == (3, [5], 1)
    assert letter.error == "ValueError: cannot digest a2"


def test_a_skip_records_who_and_why_and_handles_the_held_events() -> None:
    store, _, lane = _parked_a()
    (parked,) = parked_keys(store, ["p"])
    with pytest.raises(InvalidEvent) as refused:
        request(store, "p", parked.letter.event_id, "skip", by="ops", reason=" ")
    assert refused.value.field == "reason"
    assert store.stream_version(dead_letter_stream("p")) == 0
    request(store, "p", parked.letter.event_id, "skip", by="manager-1", reason="duplicate sale")
    with pytest.raises(DeadLetterBusy):
        request(store, "p", parked.letter.event_id, "retry", by="ops")
    lane.step()
    assert _order(store) == ["b1", "b2", "a2", "a3"]
    assert read_parked(store, "p", 0).letters == {}
    (audit,) = store.read_stream(dead_letter_stream("p"))
    assert audit.type == "DeadLetterSkipped"
    assert (audit.payload()["by"], audit.payload()["reason"]) == ("manager-1", "duplicate sale")
    with pytest.raises(DeadLetterResolved):
        request(store, "p", parked.letter.event_id, "skip", by="ops", reason="again")


def test_unknown_dead_letters_are_refused_with_nothing_written() -> None:
    store, _, _ = _parked_a()
    with pytest.raises(UnknownDeadLetter):
        request(store, "p", "00000000-0000-0000-0000-000000000000", "retry", by="ops")
    with pytest.raises(InvalidEvent) as refused:
        request(store, "p", parked_keys(store, ["p"])[0].letter.event_id, "retry", by="")
    assert refused.value.field == "by"
    assert store.stream_version(dead_letter_stream("p")) == 0


def test_a_dependant_holds_the_parked_key_and_lets_it_go_after_the_upstream() -> None:
    store = MemoryEventStore()
    upstream_handler, down_handler = Poisoned("up"), Poisoned("down")
    upstream_handler.bad.add("a1")
    lanes = _lanes(
        store,
        Processor("up", upstream_handler, HAPPENED, parking=NO_WAIT),
        Processor("down", down_handler, HAPPENED, after=("up",)),
    )
    up, down = lanes["up"], lanes["down"]
    _append(store, "a1", "b1", "a2", "b2")
    _fail_until_parked(up)
    up.step()
    down.step()
    assert _order(store, "down") == ["b1", "b2"]
    held = read_parked(store, "down", 0).letters["a"]
    assert (held.behind, held.position, held.held) == ("up", 1, [3])
    with pytest.raises(DeadLetterBusy):
        request(store, "down", held.event_id, "retry", by="ops")
    upstream_handler.bad.clear()
    request(store, "up", parked_keys(store, ["up"])[0].letter.event_id, "retry", by="ops")
    down.step()  # the upstream has not retried yet: still held
    assert _order(store, "down") == ["b1", "b2"]
    up.step()
    down.step()
    assert _order(store, "down") == ["b1", "b2", "a1", "a2"]
    assert read_parked(store, "down", 0).letters == {}


def test_the_runtime_retries_then_parks_and_drains() -> None:
    store = MemoryEventStore()
    handler = Poisoned()
    handler.bad.add("a1")
    declared = Processor("p", handler, HAPPENED, parking=Parking(max_attempts=3, base=0.001))

    async def run() -> None:
        async with Runtime(store, [declared]) as runtime:
            _append(store, "a1", "b1", "a2")
            await runtime.drain(timeout=10)

    asyncio.run(run())
    letter = read_parked(store, "p", 0).letters["a"]
    assert (letter.attempts, letter.held) == (3, [3])
    assert _order(store) == ["b1"]


def test_a_skip_upstream_reaches_the_dependant_which_parks_what_it_cannot_handle() -> None:
    store = MemoryEventStore()
    upstream_handler, down_handler = Poisoned("up"), Poisoned("down")
    upstream_handler.bad.add("a1")
    down_handler.bad.add("a1")  # as the report without Inventory's effects of a skipped sale
    lanes = _lanes(
        store,
        Processor("up", upstream_handler, HAPPENED, parking=NO_WAIT),
        Processor("down", down_handler, HAPPENED, after=("up",)),
    )
    up, down = lanes["up"], lanes["down"]
    _append(store, "a1", "a2")
    _fail_until_parked(up)
    down.step()
    request(store, "up", parked_keys(store, ["up"])[0].letter.event_id, "skip", "ops", "bad")
    up.step()
    down.step()
    letter = read_parked(store, "down", 0).letters["a"]
    assert (letter.behind, letter.position, letter.held, letter.attempts) == (None, 1, [2], 1)
    assert _order(store, "up") == ["a2"]
    assert _order(store, "down") == []
    request(store, "down", letter.event_id, "skip", by="ops", reason="skipped upstream")
    down.step()
    assert _order(store, "down") == ["a2"]
    assert read_parked(store, "down", 0).letters == {}
