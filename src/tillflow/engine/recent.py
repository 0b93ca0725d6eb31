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
_TYPE: Final = 4
_CAUSATION: Final = 8


def event_of_row(row: Row) -> RecordedEvent:
    """The recorded event of a writer's row."""
    return RecordedEvent(row[1], row[2], row[3], 0, row[0], *row[4:])


CHUNK_ROWS: Final = 1024
"""Small transactions are kept together in chunks of about this many rows (at most a
sixteenth of the ring, so that dropping a chunk drops few sets still in the ring)."""

EmitterSet = tuple[RecordedEvent | Row, ...]


class _Chunk:
    """Rows of one or more whole writer transactions, at contiguous positions, and how many
    of them the emitter index covers."""

    __slots__ = ("first", "indexed", "last", "prefixes", "rows")

    def __init__(self, rows: Sequence[Row], capacity: int) -> None:
        # a full chunk is never extended: the writer's own list can be kept as it is
        self.rows: list[Row] = (
            rows if isinstance(rows, list) and len(rows) >= capacity else list(rows)
        )
        self.first: int = rows[0][_POSITION]
        self.last: int = rows[-1][_POSITION]
        self.indexed = 0
        self.prefixes: list[bytes] = []


class RecentEvents:
    """Events of one lane by position, ``size`` slots. Thread-safe under the GIL: a slot is
    one list item, and every hit checks the event's position. A slot holds an event, or a
    writer's row until someone reads it.

    Remembering a writer's transaction costs a slice assignment and a list extension: the
    index of emitter sets is built only when :meth:`emitted` is first asked, so a process
    nobody reads back from pays no Python work per row. Small transactions share chunks of
    about :data:`CHUNK_ROWS` rows and emitter sets are tuples, so however many transactions
    the ring holds, the garbage collector has a few dozen containers to walk, not one per
    transaction or per set (at 1,000 checkouts/s it had ~45,000 lists to walk, and a full
    collection stopped the process for 40 ms). A chunk, and the emitter sets of its rows, is
    dropped once a newer position has taken the slot of its first row."""

    def __init__(self, size: int = 65_536) -> None:
        if size < 1:
            raise ValueError("size must be ≥ 1")
        self.size = size
        self._slots: list[RecordedEvent | Row | None] = [None] * size
        self._chunks: deque[_Chunk] = deque()
        self._chunk_rows = max(1, min(CHUNK_ROWS, size // 16))
        self._by_emitter: dict[bytes, EmitterSet] = {}
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
                self._keep_chunk(rows, first, last)
            self._newest = max(self._newest, last)
            self._drop_evicted()  # a transaction larger than the ring goes at once

    def _keep_chunk(self, rows: Sequence[Row], first: int, last: int) -> None:
        """Add a transaction's rows to the newest chunk if they follow it and it has room,
        else start a chunk (lock held)."""
        chunks = self._chunks
        tail = chunks[-1] if chunks else None
        if tail is not None and tail.last + 1 == first and len(tail.rows) < self._chunk_rows:
            tail.rows.extend(rows)
            tail.last = last
        else:
            chunks.append(_Chunk(rows, self._chunk_rows))

    def _assign(self, start: int, rows: Sequence[Row]) -> None:
        """Put ``rows`` in consecutive slots from ``start``, wrapping around (lock held)."""
        room = self.size - start
        if len(rows) <= room:
            self._slots[start : start + len(rows)] = rows
        else:
            self._slots[start:] = rows[:room]
            self._slots[: len(rows) - room] = rows[room:]

    def _drop_evicted(self) -> None:
        """Forget each chunk whose first row's slot a newer position has taken, and the
        emitter sets of its rows (lock held)."""
        chunks, by_emitter = self._chunks, self._by_emitter
        oldest_held = self._newest - self.size
        while chunks and chunks[0].first <= oldest_held:
            gone = chunks.popleft()
            for prefix in gone.prefixes:
                found = by_emitter.get(prefix)
                if found and _position(found[0]) <= gone.last:
                    del by_emitter[prefix]

    def _index_new(self) -> None:
        """Index the emitter sets of the rows not indexed yet (lock held). A chunk grows by
        whole transactions, so each set is complete when indexed."""
        pending: list[_Chunk] = []
        for chunk in reversed(self._chunks):
            if chunk.indexed == len(chunk.rows):
                break
            pending.append(chunk)
        by_emitter = self._by_emitter
        for chunk in reversed(pending):
            sets: dict[bytes, list[Row]] = {}
            for row in chunk.rows[chunk.indexed :]:
                if row[_CAUSATION] is not None:
                    prefix = row[_ID][:EMITTER_PREFIX]
                    found = sets.get(prefix)
                    if found is None:
                        sets[prefix] = [row]
                    else:
                        found.append(row)
            for prefix, members in sets.items():
                by_emitter[prefix] = tuple(members)
            chunk.prefixes.extend(sets)
            chunk.indexed = len(chunk.rows)

    def emitted(self, prefix: bytes) -> list[RecordedEvent] | None:
        """The complete set of remembered events whose ids start with ``prefix`` (one
        processor's effects of one source), or ``None`` if not held."""
        with self._lock:
            self._index_new()
            found = self._by_emitter.get(prefix)
            if found is None:
                return None
            events = [_event(item) for item in found]
            self._by_emitter[prefix] = tuple(events)  # read once, kept as events
            return events

    def prefix(
        self, after: int, upto: int, types: frozenset[str] | None = None
    ) -> tuple[list[RecordedEvent], int]:
        """The events held from ``after + 1`` on, up to ``upto`` or the first position not
        held, and the position of the last one held (``after`` when none is). ``types``:
        only events of those types are given (the rest are passed over as they are held:
        a writer's row of another type is not made an event)."""
        if upto - after > self.size:
            return [], after
        slots, size = self._slots, self.size
        found: list[RecordedEvent] = []
        converted: list[tuple[int, Row, RecordedEvent]] = []
        through = after
        for position in range(after + 1, upto + 1):
            item = slots[position % size]
            if item is None:
                break
            if isinstance(item, tuple):
                if item[_POSITION] != position:
                    break
                through = position
                if types is not None and item[_TYPE] not in types:
                    continue
                event = event_of_row(item)
                converted.append((position % size, item, event))
            else:
                event = item
                if event.position != position:
                    break
                through = position
                if types is not None and event.type not in types:
                    continue
            found.append(event)
        if converted:  # read once, kept as events (unless the slot moved on meanwhile)
            with self._lock:
                for slot, row, event in converted:
                    if slots[slot] is row:
                        slots[slot] = event
        return found, through

    def missing_through(self, after: int, upto: int) -> int:
        """The last position of the run not held from ``after + 1`` on (at most ``upto``):
        what a reader must fetch elsewhere before the ring holds events again."""
        slots, size = self._slots, self.size
        for position in range(after + 1, upto + 1):
            if _position(slots[position % size]) == position:
                return position - 1
        return upto

    def near_newest(self, position: int) -> bool:
        """Whether ``position`` is within the newest quarter of the ring: events read from
        there on are worth remembering (a replay of old events would evict the ones the
        live processors are about to read)."""
        return position >= self._newest - self.size // 4


def _position(item: RecordedEvent | Row | None) -> int:
    if item is None:
        return -1
    if isinstance(item, tuple):
        return int(item[_POSITION])
    return item.position


def _event(item: RecordedEvent | Row) -> RecordedEvent:
    return event_of_row(item) if isinstance(item, tuple) else item
