"""The ring of recent events: rows kept as the writer inserted them, events when read."""

from __future__ import annotations

from tillflow.engine import RecordedEvent
from tillflow.engine.ids import derived_id_at, derived_id_base, new_event_id
from tillflow.engine.recent import RecentEvents, Row, event_of_row


def _row(position: int, event_id: bytes | None = None, causation: bytes | None = None) -> Row:
    return (
        position,
        event_id or new_event_id(),
        "s",
        position,
        "Noted",
        1,
        b'{"n":%d}' % position,
        1.5,
        causation,
        causation,
    )


def test_rows_come_back_as_the_events_a_read_would_give() -> None:
    ring = RecentEvents(8)
    rows = [_row(position) for position in range(1, 5)]
    ring.remember_rows(rows)
    held = ring.span(0, 4)
    assert held is not None
    assert held == [event_of_row(row) for row in rows]
    assert all(isinstance(event, RecordedEvent) for event in held)
    assert ring.span(1, 3) == held[1:3]
    assert ring.span(0, 5) is None  # position 5 was never held


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
    assert ring.span(0, 3) is None  # position 1 is gone
    assert ring.span(1, 3) is not None


def test_a_slot_that_moved_on_while_read_is_not_overwritten_by_the_old_event() -> None:
    ring = RecentEvents(2)
    ring.remember_rows([_row(1), _row(2)])
    assert ring.span(0, 2) is not None
    ring.remember_rows([_row(3)])  # evicts position 1
    assert ring.span(0, 2) is None
    held = ring.span(1, 3)
    assert held is not None and [event.position for event in held] == [2, 3]
