"""One read of a lane for the processors of a process that want the same events.

A worker runs several processors over the same lanes (Inventory and the receipt numbers,
say), and each read every checkout of every lane from the server on its own: on the shop
on PostgreSQL, half the rows the server sent and the worker decoded. A
:class:`LaneWindows` keeps, per lane, the events last read at positions ``(after, upto]``
of some types, and serves another processor's read from it when the read falls inside
(reading on from the window's end if it asks for more). The window takes the union of
the types its readers ask for, so that they converge on one read.

Only committed positions are kept: the caller reads up to a head it has seen (positions
are dense and commit in order per lane, so everything up to a head seen is committed and
never changes). A window holds at most :data:`MOST_EVENTS` events, the oldest dropped
first.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Final

from tillflow.engine.types import RecordedEvent

MOST_EVENTS: Final = 1024
"""Events a lane's window keeps at most (older ones are read again, as without the
window): processors that keep up are a few dozen events apart on a lane, and a store's
windows then hold ~1 MB a lane at most (16 lanes: ~11 MB of checkouts)."""

Fetch = Callable[[int, int, frozenset[str]], list[RecordedEvent]]
"""``fetch(after, upto, types)``: the lane's events at positions ``(after, upto]`` whose
type is in ``types``, in position order, from the store."""


def _position(event: RecordedEvent) -> int:
    return event.position


class _Window:
    __slots__ = ("after", "events", "lock", "types", "upto")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.after = 0
        self.upto = 0
        self.types: frozenset[str] = frozenset()
        self.events: list[RecordedEvent] = []
        """Every event at positions ``(after, upto]`` whose type is in ``types``."""


class LaneWindows:
    """Per lane, the window of events last read (see the module docstring)."""

    def __init__(self, most: int = MOST_EVENTS) -> None:
        self._most = most
        self._windows: dict[int, _Window] = {}
        self.fetched = 0
        """Reads that went to the store (for tests and statistics)."""

    def read(
        self, lane: int, after: int, upto: int, types: frozenset[str], fetch: Fetch
    ) -> list[RecordedEvent]:
        """The events of ``lane`` at positions ``(after, upto]`` whose type is in
        ``types``, in position order; ``upto`` must be a head seen committed."""
        if upto <= after or not types:
            return []
        window = self._windows.get(lane) or self._windows.setdefault(lane, _Window())
        with window.lock:
            inside = window.after <= after <= window.upto and window.upto > window.after
            if inside and types <= window.types:
                if upto > window.upto:
                    self.fetched += 1
                    window.events.extend(fetch(window.upto, upto, window.types))
                    window.upto = upto
                chosen = _select(window.events, after, upto, types, window.types)
                self._trim(window)  # after choosing: the oldest may be what this read wants
                return chosen
            overlaps = after <= window.upto and upto >= window.after
            wanted = types | window.types if overlaps else types
            self.fetched += 1
            events = fetch(after, upto, wanted)
            if upto >= window.upto:  # at least as fresh: the readers move on from here
                window.after, window.upto, window.types = after, upto, wanted
                window.events = list(events)  # trimmed in place: not the caller's list
                self._trim(window)
            return events if wanted == types else [e for e in events if e.type in types]

    def _trim(self, window: _Window) -> None:
        excess = len(window.events) - self._most
        if excess > 0:
            window.after = window.events[excess - 1].position
            del window.events[:excess]


def _select(
    events: list[RecordedEvent],
    after: int,
    upto: int,
    types: frozenset[str],
    held: frozenset[str],
) -> list[RecordedEvent]:
    start = bisect.bisect_right(events, after, key=_position)
    end = bisect.bisect_right(events, upto, lo=start, key=_position)
    chosen = events[start:end]
    return chosen if types == held else [event for event in chosen if event.type in types]
