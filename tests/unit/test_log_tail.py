"""Following a store's lanes up to moving marks (what the simulator's audits fold after
every step): every event once, in lane order, none skipped; a mark that moves back or
another store starts over and says so."""

from __future__ import annotations

import random

from tillflow.engine import MemoryEventStore, NewEvent, RecordedEvent
from tillflow.engine.log_tail import LastAnswer, LogTail


def _filled(lanes: int, count: int, seed: int) -> MemoryEventStore:
    store = MemoryEventStore(lanes)
    rng = random.Random(seed)
    for number in range(count):
        kind = rng.choice(("Sold", "Taken"))
        store.append(f"s-{rng.randint(1, 9)}", [NewEvent(kind, {"n": number})])
    return store


def _ids(events: list[RecordedEvent]) -> list[tuple[int, int]]:
    return [(event.lane, event.position) for event in events]


def test_marks_moving_forward_give_every_event_once_and_in_lane_order() -> None:
    for seed in range(20):
        store = _filled(3, 60, seed)
        rng = random.Random(seed)
        tail = LogTail(("Sold",))
        marks = {lane: 0 for lane in range(3)}
        seen: list[RecordedEvent] = []
        restarts = 0
        while any(marks[lane] < store.head(lane) for lane in marks):
            for lane, mark in marks.items():
                marks[lane] = min(store.head(lane), mark + rng.randint(0, 7))
            restarted, events = tail.advance(store, marks)
            restarts += restarted
            seen += events
        assert restarts == 1  # the first call only
        everything = [e for lane in range(3) for e in store.read(lane, 0, types={"Sold"})]
        assert sorted(_ids(seen)) == sorted(_ids(everything))
        assert len(set(_ids(seen))) == len(seen)
        for lane in range(3):
            positions = [event.position for event in seen if event.lane == lane]
            assert positions == sorted(positions)


def test_a_mark_moving_back_starts_over_from_the_first_event() -> None:
    store = _filled(1, 20, 1)
    tail = LogTail()
    assert tail.advance(store, {0: 12})[0]
    assert tail.advance(store, {0: 15}) == (False, store.read(0, 12, 15))
    restarted, events = tail.advance(store, {0: 4})  # a checkpoint reset (a rebuild)
    assert restarted
    assert events == store.read(0, 0, 4)
    assert tail.advance(store, {0: 4}) == (False, [])


def test_another_store_starts_over() -> None:
    first, second = _filled(1, 10, 1), _filled(1, 10, 2)
    tail = LogTail()
    tail.advance(first, {0: 10})
    restarted, events = tail.advance(second, {0: 10})
    assert restarted
    assert events == second.read(0, 0, 10)


def test_a_check_asked_about_the_same_inputs_answers_without_computing_again() -> None:
    computed: list[int] = []

    def check(value: int) -> list[str]:
        computed.append(value)
        return [f"bad {value}"] if value % 2 else []

    last = LastAnswer()
    assert last.of(("store", {0: 3}, 1), lambda: check(1)) == ["bad 1"]
    kept = last.of(("store", {0: 3}, 1), lambda: check(99))
    assert kept == ["bad 1"]
    assert computed == [1]
    kept.append("changed by the caller")  # a copy: the next answer is untouched
    assert last.of(("store", {0: 3}, 1), lambda: check(99)) == ["bad 1"]
    assert last.of(("store", {0: 4}, 1), lambda: check(2)) == []  # a checkpoint moved
    assert last.of(("store", {0: 4}, 3), lambda: check(3)) == ["bad 3"]  # a row changed
    assert computed == [1, 2, 3]
