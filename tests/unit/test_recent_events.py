"""The ring of recent events: rows kept as the writer inserted them, events when read."""

from __future__ import annotations

import gc

from tillflow.engine import RecordedEvent
from tillflow.engine.ids import derived_id_at, derived_id_base, new_event_id
from tillflow.engine.recent import RecentEvents, Row, event_of_row


def _row(
    position: int,
    event_id: bytes | None = None,
    causation: bytes | None = None,
    event_type: str = "Noted",
) -> Row:
    return (
        position,
        event_id or new_event_id(),
        "s",
        position,
        event_type,
        1,
        b'{"n":%d}' % position,
        1.5,
        causation,
        causation,
    )


def _span(ring: RecentEvents, after: int, upto: int) -> list[RecordedEvent] | None:
    """Every event in ``(after, upto]`` if the ring holds them all, else ``None``."""
    found, through = ring.prefix(after, upto)
    return found if through == upto else None


def test_rows_come_back_as_the_events_a_read_would_give() -> None:
    ring = RecentEvents(8)
    rows = [_row(position) for position in range(1, 5)]
    ring.remember_rows(rows)
    held = _span(ring, 0, 4)
    assert held is not None
    assert held == [event_of_row(row) for row in rows]
    assert all(isinstance(event, RecordedEvent) for event in held)
    assert _span(ring, 1, 3) == held[1:3]
    assert _span(ring, 0, 5) is None  # position 5 was never held


def test_one_sources_effects_are_a_complete_set_until_one_of_them_is_evicted() -> None:
    ring = RecentEvents(4)
    source = new_event_id()
    base = derived_id_base("inventory", source)
    effects = [_row(position, derived_id_at(base, i), source) for i, position in enumerate([1, 2])]
    ring.remember_rows([*effects, _row(3)])
    prefix = derived_id_at(base, 0)[:14]
    assert ring.emitted(prefix) == [event_of_row(row) for row in effects]
    assert ring.emitted(prefix) == [event_of_row(row) for row in effects]  # read twice
    ring.remember_rows([_row(5)])  # slot 1 of 4: evicts the first effect
    assert ring.emitted(prefix) is None
    assert _span(ring, 0, 3) is None  # position 1 is gone
    assert _span(ring, 1, 3) is not None


def test_a_slot_that_moved_on_while_read_is_not_overwritten_by_the_old_event() -> None:
    ring = RecentEvents(2)
    ring.remember_rows([_row(1), _row(2)])
    assert _span(ring, 0, 2) is not None
    ring.remember_rows([_row(3)])  # evicts position 1
    assert _span(ring, 0, 2) is None
    held = _span(ring, 1, 3)
    assert held is not None and [event.position for event in held] == [2, 3]


def test_a_transaction_that_wraps_past_the_last_slot_is_held_whole() -> None:
    ring = RecentEvents(5)
    ring.remember_rows([_row(1), _row(2), _row(3)])
    rows = [_row(position) for position in range(4, 9)]  # slots 4, 0, 1, 2, 3
    ring.remember_rows(rows)
    assert _span(ring, 3, 8) == [event_of_row(row) for row in rows]
    assert _span(ring, 2, 8) is None  # position 3 was evicted by position 8


def test_a_transaction_larger_than_the_ring_keeps_its_newest_rows_and_no_sets() -> None:
    ring = RecentEvents(3)
    source = new_event_id()
    base = derived_id_base("inventory", source)
    rows = [_row(position, derived_id_at(base, position), source) for position in range(1, 6)]
    ring.remember_rows(rows)
    assert _span(ring, 2, 5) == [event_of_row(row) for row in rows[2:]]
    assert _span(ring, 1, 5) is None
    # the set lost two of its events to the ring's size: never served as complete
    assert ring.emitted(derived_id_at(base, 0)[:14]) is None


def test_sets_are_found_in_every_transaction_held_and_dropped_with_their_transaction() -> None:
    ring = RecentEvents(6)
    prefixes = []
    for first in (1, 3, 5, 7):  # four transactions of one source's two effects
        source = new_event_id()
        base = derived_id_base("inventory", source)
        ring.remember_rows([_row(first + i, derived_id_at(base, i), source) for i in range(2)])
        prefixes.append(derived_id_at(base, 0)[:14])
    # newest position 8, six slots: positions 3..8 held, the transaction at 1..2 gone
    assert ring.emitted(prefixes[0]) is None
    for prefix, first in zip(prefixes[1:], (3, 5, 7), strict=True):
        found = ring.emitted(prefix)
        assert found is not None and [event.position for event in found] == [first, first + 1]
    source = new_event_id()
    base = derived_id_base("inventory", source)
    ring.remember_rows([_row(9, derived_id_at(base, 0), source)])  # takes position 3's slot
    assert ring.emitted(prefixes[1]) is None
    assert ring.emitted(prefixes[2]) is not None
    assert ring.emitted(derived_id_at(base, 0)[:14]) is not None


def test_rows_of_scattered_positions_are_held_one_by_one() -> None:
    ring = RecentEvents(8)
    rows = [_row(2), _row(5)]
    ring.remember_rows(rows)
    assert _span(ring, 1, 2) == [event_of_row(rows[0])]
    assert _span(ring, 4, 5) == [event_of_row(rows[1])]
    assert _span(ring, 1, 5) is None
    assert ring.prefix(1, 5) == ([event_of_row(rows[0])], 2)  # up to the first gap


def test_a_read_of_some_types_leaves_the_rows_of_other_types_as_rows() -> None:
    ring = RecentEvents(8)
    rows = [_row(p, event_type="Sold" if p % 2 else "Taken") for p in range(1, 6)]
    ring.remember_rows(rows)
    sold = [event_of_row(row) for row in rows if row[4] == "Sold"]
    assert ring.prefix(0, 5, frozenset({"Sold"})) == (sold, 5)
    assert ring.prefix(0, 7, frozenset({"Sold"})) == (sold, 5)  # up to the first gap
    assert ring.prefix(1, 2, frozenset({"Sold"})) == ([], 2)  # none of them, all held
    assert ring.prefix(0, 5, frozenset()) == ([], 5)
    slots = [ring._slots[p % 8] for p in range(1, 6)]
    assert [isinstance(slot, tuple) for slot in slots] == [False, True, False, True, False]
    assert _span(ring, 0, 5) == [event_of_row(row) for row in rows]  # all types: all of them


def _effects_of_one_source(first: int, count: int) -> tuple[bytes, list[Row]]:
    source = new_event_id()
    base = derived_id_base("inventory", source)
    rows = [_row(first + i, derived_id_at(base, i), source) for i in range(count)]
    return derived_id_at(base, 0)[:14], rows


def test_many_small_transactions_leave_the_collector_few_containers_to_walk() -> None:
    gc.collect()
    before = len(gc.get_objects())
    ring = RecentEvents(4096)
    prefixes = []
    for first in range(1, 4001, 2):  # 2,000 transactions of one source's two effects
        prefix, rows = _effects_of_one_source(first, 2)
        ring.remember_rows(rows)
        prefixes.append(prefix)
    found = ring.emitted(prefixes[-1])  # indexes every set held
    assert found is not None and [event.position for event in found] == [3999, 4000]
    assert ring.emitted(prefixes[0]) is not None
    gc.collect()
    # one container per transaction or per set would be ≥ 2,000 (it was ~4,000)
    assert len(gc.get_objects()) - before < 100
    assert ring.emitted(prefixes[1000]) is not None


def test_a_transaction_is_never_split_between_chunks() -> None:
    ring = RecentEvents(64)  # chunks of about 4 rows
    sets = []
    first = 1
    for size in (3, 3, 5, 1, 2, 7):
        prefix, rows = _effects_of_one_source(first, size)
        ring.remember_rows(rows)
        sets.append((prefix, [row[0] for row in rows]))
        first += size
    for prefix, positions in sets:
        found = ring.emitted(prefix)
        assert found is not None and [event.position for event in found] == positions
