"""A bounded ring of recently committed events, shared by the processors of one process.

Downstream processors read what upstream processors (or the writer) read or wrote moments
ago; serving those reads from memory instead of decoding the same rows again is what lets
a chain of processors keep up with the writer (as the LMAX Disruptor's ring buffer does).
The ring holds at most ``size`` events, so memory stays flat however long the log grows.
Only committed events enter it, and a committed position never changes, so a hit is always
exact; a miss falls back to the store.

The writer hands over its rows as they were inserted (:meth:`RecentEvents.remember_rows`);
they become :class:`RecordedEvent` objects only when read, so a process whose own writes
nobody reads back (tills, a processor whose dependants run elsewhere) pays nothing for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any, Final

from tillflow.engine.ids import EMITTER_PREFIX
from tillflow.engine.types import RecordedEvent

Row = tuple[Any, ...]
"""A row as the writer inserts it: ``(position, id, stream, version, type, schema_version,
data, recorded_at, causation_id, correlation_id)`` (lane 0)."""

_POSITION: Final = 0
_ID: Final = 1
_CAUSATION: Final = 8


def event_of_row(row: Row) -> RecordedEvent:
    """The recorded event of a writer's row."""
    return RecordedEvent(row[1], row[2], row[3], 0, row[0], *row[4:])


class RecentEvents:
    """Events of one lane by position, ``size`` slots. Thread-safe under the GIL: a slot is
    one list item, and every hit checks the event's position. A slot holds an event, or a
    writer's row until someone reads it."""

    def __init__(self, size: int = 65_536) -> None:
        if size < 1:
            raise ValueError("size must be ≥ 1")
        self.size = size
        self._slots: list[RecordedEvent | Row | None] = [None] * size
        self._by_emitter: dict[bytes, list[RecordedEvent | Row]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def remember(self, events: Iterable[RecordedEvent]) -> None:
        """Keep ``events`` (committed ones, read from the store), evicting whatever sat in
        their slots. Not indexed by emitter: a read need not hold every event of a set."""
        slots, size = self._slots, self.size
        batch = list(events)
        with self._lock:
            for event in batch:
                slot = event.position % size
                self._forget(slots[slot])
                slots[slot] = event

    def remember_rows(self, rows: Sequence[Row]) -> None:
        """Keep the rows one transaction inserted, as rows. They are everything that
        transaction recorded, so the events a processor emitted while handling one source
        (they share the first 14 bytes of their derived ids, and are always committed
        together) are indexed as a complete set; evicting any of them forgets the set."""
        slots, size, by_emitter = self._slots, self.size, self._by_emitter
        with self._lock:
            for row in rows:
                slot = row[_POSITION] % size
                self._forget(slots[slot])
                slots[slot] = row
            if len(rows) <= size:  # else some evicted others
                for row in rows:
                    if row[_CAUSATION] is not None:
                        by_emitter.setdefault(row[_ID][:EMITTER_PREFIX], []).append(row)

    def _forget(self, old: RecordedEvent | Row | None) -> None:
        """Drop the emitter set of an evicted slot's item (holding the lock)."""
        if old is None:
            return
        if isinstance(old, tuple):
            if old[_CAUSATION] is not None:
                self._by_emitter.pop(old[_ID][:EMITTER_PREFIX], None)
        elif old.causation_id is not None:
            self._by_emitter.pop(old.id[:EMITTER_PREFIX], None)

    def emitted(self, prefix: bytes) -> list[RecordedEvent] | None:
        """The complete set of remembered events whose ids start with ``prefix`` (one
        processor's effects of one source), or ``None`` if not held."""
        with self._lock:
            found = self._by_emitter.get(prefix)
            if found is None:
                return None
            events = [_event(item) for item in found]
            found[:] = events  # read once, kept as events
            return list(events)

    def span(self, after: int, upto: int) -> list[RecordedEvent] | None:
        """Every event with ``after < position <= upto``, or ``None`` unless all are held."""
        count = upto - after
        if count <= 0:
            return []
        if count > self.size:
            self.misses += 1
            return None
        slots, size = self._slots, self.size
        if (
            _position(slots[(after + 1) % size]) != after + 1
            or _position(slots[upto % size]) != upto
        ):
            self.misses += 1
            return None
        found: list[RecordedEvent] = []
        converted: list[tuple[int, Row, RecordedEvent]] = []
        for position in range(after + 1, upto + 1):
            item = slots[position % size]
            if item is None:
                self.misses += 1
                return None
            if isinstance(item, tuple):
                if item[_POSITION] != position:
                    self.misses += 1
                    return None
                event = event_of_row(item)
                converted.append((position % size, item, event))
            else:
                event = item
                if event.position != position:
                    self.misses += 1
                    return None
            found.append(event)
        if converted:  # read once, kept as events (unless the slot moved on meanwhile)
            with self._lock:
                for slot, row, event in converted:
                    if slots[slot] is row:
                        slots[slot] = event
        self.hits += 1
        return found


def _position(item: RecordedEvent | Row | None) -> int:
    if item is None:
        return -1
    if isinstance(item, tuple):
        return int(item[_POSITION])
    return item.position


def _event(item: RecordedEvent | Row) -> RecordedEvent:
    return event_of_row(item) if isinstance(item, tuple) else item
