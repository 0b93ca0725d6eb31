"""A bounded ring of recently committed events, shared by the processors of one process.

Downstream processors read what upstream processors (or the writer) read or wrote moments
ago; serving those reads from memory instead of decoding the same rows again is what lets
a chain of processors keep up with the writer (as the LMAX Disruptor's ring buffer does).
The ring holds at most ``size`` events, so memory stays flat however long the log grows.
Only committed events enter it, and a committed position never changes, so a hit is always
exact; a miss falls back to the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from tillflow.engine.ids import EMITTER_PREFIX
from tillflow.engine.types import RecordedEvent


class RecentEvents:
    """Events of one lane by position, ``size`` slots. Thread-safe under the GIL: a slot is
    one list item, and every hit checks the event's position."""

    def __init__(self, size: int = 65_536) -> None:
        if size < 1:
            raise ValueError("size must be ≥ 1")
        self.size = size
        self._slots: list[RecordedEvent | None] = [None] * size
        self._by_emitter: dict[bytes, list[RecordedEvent]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def remember(self, events: Iterable[RecordedEvent], whole_transaction: bool = False) -> None:
        """Keep ``events`` (committed ones only), evicting whatever sat in their slots.

        ``whole_transaction``: ``events`` are everything one transaction recorded, so the
        events a processor emitted while handling one source (they share the first 14
        bytes of their derived ids, and are always committed together) can be indexed as a
        complete set. Evicting any of them forgets the whole set.
        """
        slots, size, by_emitter = self._slots, self.size, self._by_emitter
        batch = list(events)
        with self._lock:
            for event in batch:
                slot = event.position % size
                old = slots[slot]
                if old is not None and old.causation_id is not None:
                    by_emitter.pop(old.id[:EMITTER_PREFIX], None)
                slots[slot] = event
            if whole_transaction and len(batch) <= size:  # else some evicted others
                for event in batch:
                    if event.causation_id is not None:
                        by_emitter.setdefault(event.id[:EMITTER_PREFIX], []).append(event)

    def emitted(self, prefix: bytes) -> list[RecordedEvent] | None:
        """The complete set of remembered events whose ids start with ``prefix`` (one
        processor's effects of one source), or ``None`` if not held."""
        with self._lock:
            found = self._by_emitter.get(prefix)
            return None if found is None else list(found)

    def span(self, after: int, upto: int) -> list[RecordedEvent] | None:
        """Every event with ``after < position <= upto``, or ``None`` unless all are held."""
        count = upto - after
        if count <= 0:
            return []
        if count > self.size:
            self.misses += 1
            return None
        slots, size = self._slots, self.size
        first = slots[(after + 1) % size]
        last = slots[upto % size]
        if first is None or last is None or first.position != after + 1 or last.position != upto:
            self.misses += 1
            return None
        found = [slots[position % size] for position in range(after + 1, upto + 1)]
        for offset, event in enumerate(found, start=after + 1):
            if event is None or event.position != offset:
                self.misses += 1
                return None
        self.hits += 1
        return found  # type: ignore[return-value]  # checked: no None left
