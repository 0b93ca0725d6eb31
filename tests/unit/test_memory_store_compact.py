"""The memory store's compact storage: what it costs per event, that packing changes nothing
that can be read (also while it happens), and one notification per ``append_many``."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Iterator

import msgspec
import pytest

from tillflow.engine import (
    AppendRequest,
    BatchEffects,
    Emitted,
    MemoryEventStore,
    NewEvent,
    Receipt,
    RecordedEvent,
    id_from_key,
    new_event_id,
)
from tillflow.engine.id_index import IdIndex
from tillflow.engine.ids import derived_event_id, format_id
from tillflow.engine.lanes import lane_of
from tillflow.engine.store import receipt_of

BYTES_PER_EVENT = 300
PRODUCTS = 200


def _checkout_data(number: int) -> dict[str, object]:
    """About the size and shape of the shop's ``CheckedOut`` (~400 bytes of JSON)."""
    lines = [
        {
            "product_id": f"p{(number * 7 + line) % PRODUCTS:03d}",
            "name": f"Product {(number * 7 + line) % PRODUCTS}",
            "quantity": 1 + line,
            "unit_price": 100 + number % 900,
            "line_total": (1 + line) * (100 + number % 900),
        }
        for line in range(3)
    ]
    return {"till_id": f"till-{number % 16:02d}", "lines": lines, "total": 123_456}


def _taken_data(number: int, line: int, checkout_id: str) -> dict[str, object]:
    """About the size and shape of the shop's ``ProductTaken`` (~170 bytes of JSON)."""
    return {
        "product_id": f"p{(number * 7 + line) % PRODUCTS:03d}",
        "checkout_id": checkout_id,
        "quantity": 1 + line,
        "unit_price": 100 + number % 900,
        "line_total": (1 + line) * (100 + number % 900),
        "stock_after": 1_000_000 - number,
        "short_after": 0,
        "line": line,
    }


def _ring_up(store: MemoryEventStore, first: int, count: int) -> None:
    """``count`` checkouts as the shop records them: a ``CheckedOut`` on its own stream
    (``append_many``), then Inventory's three ``ProductTaken`` on product streams, caused
    by it, with derived ids (``commit_batch``)."""
    ids = [id_from_key("checkout", str(first + index)) for index in range(count)]
    requests = [
        AppendRequest(
            f"checkout-{format_id(ids[index])}",
            [NewEvent("CheckedOut", _checkout_data(first + index), id=ids[index])],
            0,
        )
        for index in range(count)
    ]
    store.append_many(requests)
    effects = BatchEffects()
    for index, source in enumerate(ids):
        for line in range(3):
            effects.emitted.append(
                Emitted(
                    f"stock-p{((first + index) * 7 + line) % PRODUCTS:03d}",
                    [
                        NewEvent(
                            "ProductTaken",
                            _taken_data(first + index, line, format_id(source)),
                            id=derived_event_id("inventory", source, line),
                            causation_id=source,
                            correlation_id=source,
                        )
                    ],
                    checked=True,
                )
            )
    checkpoint = store.checkpoint("inventory", 0)
    store.commit_batch("inventory", 0, checkpoint, checkpoint + 1, effects)


def _traced_bytes_per_event(store: MemoryEventStore, checkouts: int) -> float:
    tracemalloc.start()
    try:
        gc.collect()
        before, events = tracemalloc.get_traced_memory()[0], store.head(0)
        for first in range(0, checkouts, 500):
            _ring_up(store, first, 500)
        store.settle()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return grown / (store.head(0) - events)


def test_a_stored_event_costs_at_most_300_bytes() -> None:
    """20,000 shop-like events (5,000 checkouts) past a small hot window: everything the
    store allocated for them (packed blocks, indexes, the hot objects) over their count."""
    store = MemoryEventStore(hot=1024, window=2048)
    per_event = _traced_bytes_per_event(store, 5_000)
    assert store.head(0) == 20_000
    assert per_event <= BYTES_PER_EVENT, f"{per_event:.0f} bytes per stored event"


def test_events_kept_as_objects_cost_more_than_the_bound() -> None:
    """Negative control: the same events all kept as objects (nothing packed) are over
    the bound, so the bound measures the packing."""
    store = MemoryEventStore(hot=1_000_000)
    assert _traced_bytes_per_event(store, 5_000) > BYTES_PER_EVENT


def _everything(store: MemoryEventStore) -> list[object]:
    """What a reader can see: the lane, a long and a short stream, lookups by id and
    causation."""
    streams = [  # first: before a read of the lane has decoded whole windows
        store.read_stream("stock-p007"),
        store.read_stream("stock-p007", 3, 9),
        store.read_stream(f"checkout-{format_id(id_from_key('checkout', '3'))}"),
    ]
    lane = store.read(0, 0)
    checkouts = [event for event in lane if event.type == "CheckedOut"]
    return [
        *streams,
        lane,
        store.read(0, 5, 4_000, types={"ProductTaken"}, limit=700),
        store.last_event("stock-p011"),
        store.stream_version("stock-p011"),
        [store.get_event(event.id) for event in lane[::97]],
        [store.find_by_causation(event.id) for event in checkouts[::31]],
        store.get_event(id_from_key("nowhere", "nothing")),
    ]


@pytest.mark.parametrize(
    "window",
    [
        128,  # every product stream has fewer than OWN_BLOCK events per window: shared blocks
        4096,  # each has ~15: blocks of their own
    ],
)
def test_packing_changes_nothing_that_can_be_read(window: int) -> None:
    packed = MemoryEventStore(hot=64, window=window)
    plain = MemoryEventStore(hot=1_000_000)
    for store in (packed, plain):
        for first in range(0, 3_000, 500):
            _ring_up(store, first, 500)
    packed.settle()
    assert packed.head(0) == plain.head(0) == 12_000
    seen, expected = _everything(packed), _everything(plain)
    for got, wanted in zip(seen, expected, strict=True):
        assert _without_times(got) == _without_times(wanted)


def _without_times(value: object) -> object:
    """Two stores record at different times; everything else must agree."""
    if isinstance(value, RecordedEvent):
        return msgspec.structs.replace(value, recorded_at=0.0)
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value


def dense_problem(events: list[RecordedEvent]) -> str | None:
    """Why ``events`` (a whole lane as read) is not positions 1..n in order, if it is not."""
    for index, event in enumerate(events, 1):
        if event.position != index:
            return f"position {event.position} at index {index}"
    return None


def test_reads_while_packing_see_every_event_once() -> None:
    """A reader reads the whole lane and a long stream over and over, and another watches the
    head, while a writer appends and windows are packed (and installed) behind them: every
    read is dense and the head never goes back."""
    store = MemoryEventStore(hot=16, window=32)
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def watch_head() -> None:  # head is read without the store's lock
        head = 0
        while not stop.is_set():
            now = store.head(0)
            if now < head:
                problems.append(f"head went back from {head} to {now}")
            head = now

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            problem = dense_problem(store.read(0, 0))
            versions = [event.version for event in store.read_stream("stock-p000")]
            if versions != list(range(1, len(versions) + 1)):
                problem = f"stock-p000 versions {versions[:5]}..."
            if problem:
                problems.append(problem)
            reads += 1

    readers = [threading.Thread(target=read), threading.Thread(target=watch_head)]
    for reader in readers:
        reader.start()
    try:
        for first in range(0, 3_000, 50):
            _ring_up(store, first, 50)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert problems == []
    assert reads > 0


@pytest.mark.parametrize(
    "broken",
    [
        [1, 2, 2, 3],  # an event seen twice (a window installed while its objects stayed)
        [1, 3, 4],  # an event missing (objects dropped before the window was installed)
    ],
)
def test_the_density_check_catches_a_torn_read(broken: list[int]) -> None:
    """Negative control of the race test: reads torn either way are caught."""
    events = [
        RecordedEvent(new_event_id(), "s", position, 0, position, "E", 1, b"{}", 0.0, None, None)
        for position in broken
    ]
    assert dense_problem(events) is not None


@pytest.mark.parametrize("packed", [False, True])
def test_a_retry_gets_its_first_answer_from_the_objects_or_the_packed_index(packed: bool) -> None:
    """A checkout and Inventory's effects retried alone (no id twice in the batch), while
    still objects and once packed: the original receipt, nothing written again."""
    store = MemoryEventStore(hot=16, window=32)
    _ring_up(store, 0, 10)
    checkout_id = id_from_key("checkout", "3")
    [checkout] = store.read_stream(f"checkout-{format_id(checkout_id)}")
    first = store.append_many([_checkout_request(3)])[0]
    if packed:
        _ring_up(store, 10, 100)
        store.settle()
        assert store.head(0) == 440
    head = store.head(0)
    [again] = store.append_many([_checkout_request(3)])
    assert again == first == receipt_of([checkout])
    taken = store.emitted_by("inventory", checkout)
    assert len(taken) == 3
    redo = BatchEffects([Emitted(taken[1].stream, [_as_new(taken[1])], checked=True)])
    checkpoint = store.checkpoint("inventory", 0)
    assert store.commit_batch("inventory", 0, checkpoint, checkpoint + 1, redo) == Receipt({}, {})
    assert store.head(0) == head


def test_an_id_in_two_lanes_finds_its_first_row_whichever_lane_packs_first() -> None:
    """One commit recording an id on two streams of two lanes: the first written is the one
    found, while both are objects and once the other lane's window leaves the objects."""
    store = MemoryEventStore(lane_count=2, hot=4, window=4)
    first, second = (
        next(f"s-{n}" for n in range(99) if lane_of(f"s-{n}", 2) == lane) for lane in (0, 1)
    )
    twice = new_event_id()
    effects = BatchEffects(
        [Emitted(stream, [NewEvent("E", {"on": stream}, id=twice)]) for stream in (first, second)]
    )
    store.commit_batch("p", 0, 0, 0, effects)
    found = store.get_event(twice)
    assert found is not None and found.stream == first
    for _ in range(3):  # lane 1 packs the window holding the second row; lane 0 keeps objects
        store.append(second, [NewEvent("E", {}) for _ in range(4)])
    store.settle()
    assert store.head(0) == 1 and store.head(1) == 13
    found = store.get_event(twice)
    assert found is not None and found.stream == first


def _checkout_request(number: int) -> AppendRequest:
    """:func:`_ring_up`'s append of checkout ``number``."""
    checkout_id = id_from_key("checkout", str(number))
    event = NewEvent("CheckedOut", _checkout_data(number), id=checkout_id)
    return AppendRequest(f"checkout-{format_id(checkout_id)}", [event], 0)


def _as_new(event: RecordedEvent) -> NewEvent:
    return NewEvent(
        event.type,
        msgspec.json.decode(event.data),
        id=event.id,
        causation_id=event.causation_id,
        correlation_id=event.correlation_id,
    )


def test_effects_come_back_in_emission_order_whatever_the_commit_order() -> None:
    """Emission order is the derived ids' order: effects committed as 2, 0, 1 (on three
    streams in two lanes) come back as 0, 1, 2 from both joins."""
    store = MemoryEventStore(lane_count=4)
    store.append("in", [NewEvent("Happened", {})])
    [source] = store.read_stream("in")
    emitted = [
        Emitted(
            f"out-{index}",
            [
                NewEvent(
                    "Derived",
                    {"i": index},
                    id=derived_event_id("a", source.id, index),
                    causation_id=source.id,
                )
            ],
        )
        for index in (2, 0, 1)
    ]
    store.commit_batch("a", 0, 0, 1, BatchEffects(emitted))
    assert [event.payload()["i"] for event in store.emitted_by("a", source)] == [0, 1, 2]
    many = store.emitted_by_many("a", [source])[source.id]
    assert [event.payload()["i"] for event in many] == [0, 1, 2]


def test_causation_is_found_in_lane_then_position_order() -> None:
    """Effects committed into lanes 3, 2, 1, 0 (in that order) come back by lane."""
    store = MemoryEventStore(lane_count=4)
    source = store.append("source", [NewEvent("Happened", {})])
    cause = store.read_stream("source")[0].id
    streams: dict[int, str] = {}
    for number in range(100):
        streams.setdefault(lane_of(f"effect-{number}", 4), f"effect-{number}")
    effects = BatchEffects()
    for lane in (3, 2, 1, 0):
        for _ in range(2):
            event = NewEvent("Followed", {"lane": lane}, causation_id=cause)
            effects.emitted.append(Emitted(streams[lane], [event]))
    store.commit_batch("follower", 0, 0, source.positions[lane_of("source", 4)], effects)
    found = [(event.lane, event.position) for event in store.find_by_causation(cause)]
    assert found == sorted(found)
    assert [lane for lane, _ in found] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_append_many_is_one_commit_for_the_listeners() -> None:
    store = MemoryEventStore()
    calls: list[None] = []
    store.add_commit_listener(lambda: calls.append(None))
    outcomes = store.append_many(
        [AppendRequest(f"s-{index}", [NewEvent("E", {"n": index})]) for index in range(50)]
    )
    assert len(outcomes) == 50
    assert len(calls) == 1


def _ids(count: int) -> Iterator[bytes]:
    for number in range(count):
        yield id_from_key("test", str(number))


def test_the_id_index_finds_every_id_through_its_growth() -> None:
    """Ids added 700 at a time (as windows are packed) and one by one: the table grows
    past its first size several times; each id is found."""
    index = IdIndex()
    every = list(_ids(5_000))
    for first in range(0, 4_900, 700):
        last = min(first + 700, 4_900)
        index.add_many(every[first:last], range(first * 3 + 1, last * 3 + 1, 3))
    for ref in range(4_900, 5_000):
        index.add(every[ref], ref * 3 + 1)
    assert len(index) == 5_000
    assert [index.get(event_id) for event_id in every] == [ref * 3 + 1 for ref in range(5_000)]
    assert index.get(id_from_key("other", "0")) is None
    assert index.any_of([id_from_key("other", "1"), every[0]])
    assert not index.any_of([id_from_key("other", str(n)) for n in range(100)])
    assert not IdIndex().any_of(every)


def test_the_id_index_takes_references_past_32_bits() -> None:
    index = IdIndex()
    first, second = id_from_key("big", "1"), id_from_key("big", "2")
    index.add(first, 7)
    index.add(second, 2**40)
    assert (index.get(first), index.get(second)) == (7, 2**40)
