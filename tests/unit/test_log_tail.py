"""Following a store's lanes up to moving marks (what the simulator's audits fold after
every step): every event once, in lane order, none skipped; a mark that moves back or
another store starts over and says so."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tillflow.engine import MemoryEventStore, NewEvent, RecordedEvent, log_tail
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
            seen += list(events)
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
    restarted, events = tail.advance(store, {0: 15})
    assert (restarted, list(events)) == (False, store.read(0, 12, 15))
    restarted, events = tail.advance(store, {0: 4})  # a checkpoint reset (a rebuild)
    assert restarted
    assert list(events) == store.read(0, 0, 4)
    restarted, events = tail.advance(store, {0: 4})
    assert (restarted, list(events)) == (False, [])


def test_another_store_starts_over() -> None:
    first, second = _filled(1, 10, 1), _filled(1, 10, 2)
    tail = LogTail()
    list(tail.advance(first, {0: 10})[1])
    restarted, events = tail.advance(second, {0: 10})
    assert restarted
    assert list(events) == second.read(0, 0, 10)


def test_a_long_log_is_read_a_bounded_batch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_tail, "BATCH", 7)
    store = _filled(2, 100, 3)
    reads: list[int] = []
    original = store.read

    def counted(lane: int, after: int, upto: int | None = None, **options: Any) -> Any:
        found = original(lane, after, upto, **options)
        reads.append(len(found))
        return found

    monkeypatch.setattr(store, "read", counted)
    marks = {lane: store.head(lane) for lane in range(2)}
    _, events = LogTail(("Sold",)).advance(store, marks)
    seen = list(events)
    assert _ids(seen) == _ids([e for lane in range(2) for e in original(lane, 0, types={"Sold"})])
    assert max(reads) <= 7
    assert len(reads) > 2


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
