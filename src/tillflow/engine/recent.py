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
from collections import deque
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


class _Written:
    """The rows of one writer transaction (contiguous positions), and the emitter prefixes
    indexed from them (``None`` until an :meth:`RecentEvents.emitted` asks)."""

    __slots__ = ("first", "last", "prefixes", "rows")

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.first: int = rows[0][_POSITION]
        self.last: int = rows[-1][_POSITION]
        self.prefixes: list[bytes] | None = None


class RecentEvents:
    """Events of one lane by position, ``size`` slots. Thread-safe under the GIL: a slot is
    one list item, and every hit checks the event's position. A slot holds an event, or a
    writer's row until someone reads it.

    Remembering a writer's transaction costs one slice assignment: the index of emitter
    sets is built only when :meth:`emitted` is first asked, so a process nobody reads back
    from pays no Python work per row (and keeps no container per row for the garbage
    collector to walk). A transaction's rows, and their emitter sets, are dropped together
    once a newer position has taken the slot of its first row."""

    def __init__(self, size: int = 65_536) -> None:
        if size < 1:
            raise ValueError("size must be ≥ 1")
        self.size = size
        self._slots: list[RecordedEvent | Row | None] = [None] * size
        self._written: deque[_Written] = deque()
        self._by_emitter: dict[bytes, list[RecordedEvent | Row]] = {}
        self._newest = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def remember(self, events: Iterable[RecordedEvent]) -> None:
        """Keep ``events`` (committed ones, read from the store), evicting whatever sat in
        their slots. Not indexed by emitter: a read need not hold every event of a set."""
        slots, size = self._slots, self.size
        batch = list(events)
        if not batch:
            return
        with self._lock:
            for event in batch:
                slots[event.position % size] = event
            self._newest = max(self._newest, batch[-1].position)
            self._drop_evicted()

    def remember_rows(self, rows: Sequence[Row]) -> None:
        """Keep the rows one transaction inserted (contiguous positions), as rows. They are
        everything that transaction recorded, so the events a processor emitted while
        handling one source (they share the first 14 bytes of their derived ids, and are
        always committed together) form complete sets."""
        count = len(rows)
        if not count:
            return
        first, last = rows[0][_POSITION], rows[-1][_POSITION]
        size = self.size
        with self._lock:
            if last - first + 1 != count:  # not one transaction's rows: slot by slot
                for row in rows:
                    self._slots[row[_POSITION] % size] = row
            else:
                kept = rows[-size:] if count > size else rows
                self._assign((last - len(kept) + 1) % size, kept)
                self._written.append(_Written(rows))
            self._newest = max(self._newest, last)
            self._drop_evicted()  # a transaction larger than the ring goes at once

    def _assign(self, start: int, rows: Sequence[Row]) -> None:
        """Put ``rows`` in consecutive slots from ``start``, wrapping around (lock held)."""
        room = self.size - start
        if len(rows) <= room:
            self._slots[start : start + len(rows)] = rows
        else:
            self._slots[start:] = rows[:room]
            self._slots[: len(rows) - room] = rows[room:]

    def _drop_evicted(self) -> None:
        """Forget each transaction whose first row's slot a newer position has taken, and
        its emitter sets (lock held)."""
        written, by_emitter = self._written, self._by_emitter
        oldest_held = self._newest - self.size
        while written and written[0].first <= oldest_held:
            gone = written.popleft()
            for prefix in gone.prefixes or ():
                found = by_emitter.get(prefix)
                if found and _position(found[0]) <= gone.last:
                    del by_emitter[prefix]

    def _index_new(self) -> None:
        """Index the emitter sets of the transactions not indexed yet (lock held)."""
        pending: list[_Written] = []
        for written in reversed(self._written):
            if written.prefixes is not None:
                break
            pending.append(written)
        by_emitter = self._by_emitter
        for written in reversed(pending):
            prefixes: list[bytes] = []
            for row in written.rows:
                if row[_CAUSATION] is not None:
                    prefix = row[_ID][:EMITTER_PREFIX]
                    found = by_emitter.get(prefix)
                    if found is None:
                        by_emitter[prefix] = [row]
                        prefixes.append(prefix)
                    else:
                        found.append(row)
            written.prefixes = prefixes

    def emitted(self, prefix: bytes) -> list[RecordedEvent] | None:
        """The complete set of remembered events whose ids start with ``prefix`` (one
        processor's effects of one source), or ``None`` if not held."""
        with self._lock:
            self._index_new()
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
