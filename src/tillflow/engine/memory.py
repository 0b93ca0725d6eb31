"""In-memory backend: for tests, the simulator, benchmarks and embedded use. Same contract
as SQLite, nothing durable. Any number of lanes.

Compact: each lane is a :class:`LaneLog` (recent events as objects, older ones packed in
compressed blocks) and the indexes hold ints, not objects: ids in an :class:`IdIndex` (a
dict while their events are objects, a packed table after), streams as rows of their lane,
causation as references (``row * lane_count + lane``). A stream or a causation with one
event holds a plain int, with more an ``array``.

Lean: a write costs a few dict and list operations per event. Events are checked and
encoded before the lock is taken, receipts are built as the events are written, and
nothing is made per event that no reader needs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import Final, TypeAlias

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    StoreClosed,
    TillflowError,
)
from tillflow.engine.id_index import IdIndex
from tillflow.engine.ids import EMITTER_PREFIX, emitter_prefix, new_event_id
from tillflow.engine.lane_log import HOT_EVENTS, WINDOW_EVENTS, LaneLog
from tillflow.engine.lanes import lane_of
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CheckpointProgress,
    CommitListener,
    CommitListeners,
    EventRegistry,
    EventStore,
    check_not_past,
    encode_all,
    repeat_receipt,
    validate_append,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt, RecordedEvent
from tillflow.engine.upcasting import Upcasting, current_event, current_events, current_sets

_Refs: TypeAlias = "int | array[int]"
"""One int, or an ``array('Q')`` of them in commit order."""
_Plan: TypeAlias = "tuple[str, Sequence[NewEvent], list[bytes], int]"
"""An append to write: stream, events, their encoded data, the version to write after."""
_NO_REFS: Final[tuple[int, ...]] = ()
_by_id: Final = attrgetter("id")


def _refs(found: _Refs | None) -> Sequence[int]:
    if found is None:
        return _NO_REFS
    return (found,) if isinstance(found, int) else found


class MemoryEventStore(EventStore):
    """Everything in memory behind one lock; commits are atomic (validate, then apply).

    ``hot`` and ``window`` tune each lane's :class:`LaneLog` (how many recent events stay
    objects, how many are packed at a time); the defaults suit every use.
    """

    def __init__(
        self,
        lane_count: int = 1,
        registry: EventRegistry | None = None,
        *,
        hot: int = HOT_EVENTS,
        window: int = WINDOW_EVENTS,
    ) -> None:
        if lane_count < 1:
            raise ValueError("lane_count must be ≥ 1")
        self.lane_count = lane_count
        self.registry = registry
        self._upcasting: Upcasting | None = None
        """How reads bring events to their current versions, once an older version was
        appended (until then every event held is current and reads check nothing)."""
        self._lock = threading.RLock()
        self._lanes = [LaneLog(hot, window, self._packed) for _ in range(lane_count)]
        self._appenders = [log.appender() for log in self._lanes]
        self._streams: dict[str, _Refs] = {}
        """Stream → its rows (in its lane), in version order."""
        self._recent: dict[bytes, RecordedEvent] = {}
        """Id → event, of every lane's rows still objects (one dict: a check of a commit's ids
        is one pass over them; a packed window's ids leave it one by one)."""
        self._ids = IdIndex()
        """Id → reference (``row * lane_count + lane``), for packed events."""
        self._by_causation: dict[bytes, _Refs] = {}
        """Causation id → references of the events it caused, in commit order."""
        self._checkpoints: dict[tuple[str, int], int] = {}
        self._moved_at: dict[tuple[str, int], float] = {}
        """When each checkpoint last moved (Unix time)."""
        self._views: dict[str, dict[str, bytes]] = defaultdict(dict)
        self._listeners = CommitListeners()
        self._closed = False

    # -- writing ---------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        if validate_append(stream, events, self.registry):
            self._held_older()
        encoded = encode_all(events)
        positions: dict[int, int] = {}
        versions: dict[str, int] = {}
        with self._lock:
            self._check_open()
            base = self._plan(stream, events, encoded, expected_version, None)
            if isinstance(base, Receipt):
                return base
            self._write([(stream, events, encoded, base)], time.time(), positions, versions)
        self._notify()
        return Receipt(positions, versions)

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """Every request under one lock hold and one notification (one commit to the
        listeners), each checked and refused on its own, as SQLite shares a transaction."""
        prepared: list[list[bytes] | TillflowError] = []
        for request in requests:  # checked and encoded before taking the lock
            try:
                if validate_append(request.stream, request.events, self.registry):
                    self._held_older()
                prepared.append(encode_all(request.events))
            except TillflowError as refusal:
                prepared.append(refusal)
        outcomes: list[Receipt | TillflowError] = []
        now = time.time()
        with self._lock:
            self._check_open()
            check_ids = self._any_known([request.events for request in requests])
            for request, encoded in zip(requests, prepared, strict=True):
                if isinstance(encoded, TillflowError):
                    outcomes.append(encoded)
                    continue
                stream, events = request.stream, request.events
                try:
                    base = self._plan(
                        stream, events, encoded, request.expected_version, None, check_ids
                    )
                except TillflowError as refusal:
                    outcomes.append(refusal)
                    continue
                if isinstance(base, Receipt):
                    outcomes.append(base)
                    continue
                positions: dict[int, int] = {}
                versions: dict[str, int] = {}
                self._write([(stream, events, encoded, base)], now, positions, versions)
                outcomes.append(Receipt(positions, versions))
        self._notify()
        return outcomes

    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
    ) -> Receipt:
        emitted = effects.emitted
        for each in emitted:
            if not each.checked and validate_append(each.stream, each.events, self.registry):
                self._held_older()
        encoded = [encode_all(each.events) for each in emitted]
        positions: dict[int, int] = {}
        versions: dict[str, int] = {}
        with self._lock:
            self._check_open()
            check_not_past(effects, lambda name, at: self._checkpoints.get((name, at), 0))
            actual = self._checkpoints.get((processor, lane), 0)
            if actual != expected_checkpoint:
                raise CheckpointConflict(processor, lane, expected_checkpoint, actual)
            check_ids = self._any_known([each.events for each in emitted])
            plans: list[_Plan] = []
            pending: dict[str, int] = {}
            for each, data in zip(emitted, encoded, strict=True):
                stream, events = each.stream, each.events
                base = self._plan(stream, events, data, each.expected_version, pending, check_ids)
                if not isinstance(base, Receipt):  # a repeat is not written again
                    plans.append((stream, events, data, base))
            now = time.time()
            self._write(plans, now, positions, versions)
            self._checkpoints[(processor, lane)] = new_checkpoint
            self._moved_at[(processor, lane)] = now
            for (view, key), value in effects.views.items():
                if value is None:
                    self._views[view].pop(key, None)
                else:
                    self._views[view][key] = value
        self._notify()
        return Receipt(positions, versions)

    def _any_known(self, groups: Iterable[Sequence[NewEvent]]) -> bool:
        """Whether an id of these events may already be recorded, or comes twice (then
        each append is checked for repeats on its own, after the ones before it)."""
        ids = [event.id for events in groups for event in events if event.id is not None]
        return (
            len(set(ids)) != len(ids)
            or not self._recent.keys().isdisjoint(ids)
            or self._ids.any_of(ids)
        )

    def _plan(
        self,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
        expected_version: int,
        pending: dict[str, int] | None,
        check_ids: bool = True,
    ) -> int | Receipt:
        """Check one append against the current state: the stream's version to write
        after, or the original receipt when it is an exact repeat (looked for only with
        ``check_ids``). ``pending`` carries versions planned earlier in the same
        transaction (and gets this one's)."""
        current = None if pending is None else pending.get(stream)
        if current is None:
            rows = self._streams.get(stream)
            current = 0 if rows is None else 1 if type(rows) is int else len(rows)  # type: ignore[arg-type]
        if check_ids:
            for event in events:
                event_id = event.id
                if event_id is not None and self._get_event(event_id) is not None:
                    repeat = repeat_receipt(stream, events, encoded, self._get_event)  # store.py's
                    if repeat is not None:
                        return repeat
                    break
        if expected_version not in (ANY_VERSION, current):
            raise ConcurrencyConflict(stream, expected_version, current)
        if pending is not None:
            pending[stream] = current + len(events)
        return current

    def _write(
        self, plans: list[_Plan], now: float, positions: dict[int, int], versions: dict[str, int]
    ) -> None:
        """Record each plan's events (stream, events, their data, the version to write
        after), noting each lane's last position and each stream's version in the
        receipt's ``positions`` and ``versions``."""
        lane_count, lanes, streams = self.lane_count, self._lanes, self._streams
        caused, recent = self._by_causation, self._recent
        for stream, events, encoded, base in plans:
            if not events:
                continue
            version = base
            lane = 0 if lane_count == 1 else lane_of(stream, lane_count)
            log, push = lanes[lane], self._appenders[lane]
            first = row = len(log)
            # most appends hold one event: a tuple is quicker to make than a zip
            pairs = (
                zip(events, encoded, strict=True) if len(events) > 1 else ((events[0], encoded[0]),)
            )
            for event, data in pairs:
                version += 1
                event_id = event.id or new_event_id()
                cause = event.causation_id
                record = RecordedEvent(
                    event_id,
                    stream,
                    version,
                    lane,
                    row + 1,
                    event.type,
                    event.schema_version,
                    data,
                    now,
                    cause,
                    event.correlation_id,
                )
                push(record)
                recent.setdefault(event_id, record)  # an id twice in one append: the first counts
                if cause is not None:
                    ref = row * lane_count + lane
                    refs = caused.get(cause)
                    if refs is None:
                        caused[cause] = ref
                    elif type(refs) is int:
                        caused[cause] = array("Q", (refs, ref))
                    else:
                        refs.append(ref)  # type: ignore[union-attr]
                row += 1
            log.grew(row - first)
            rows = streams.get(stream)
            if rows is None:
                streams[stream] = first if row - first == 1 else array("Q", range(first, row))
            elif type(rows) is int:
                streams[stream] = array("Q", (rows, *range(first, row)))
            elif row - first == 1:
                rows.append(first)  # type: ignore[union-attr]
            else:
                rows.extend(range(first, row))  # type: ignore[union-attr]
            positions[lane] = row
            versions[stream] = version

    def _packed(self, events: list[RecordedEvent]) -> None:
        """A lane's oldest window of ``events`` is leaving the objects: their ids go compact
        (an id twice in one append: both rows, the first found)."""
        lane, count, recent = events[0].lane, self.lane_count, self._recent
        for event in events:
            if recent.get(event.id) is event:  # not a later row of an id held twice
                del recent[event.id]
        first = (events[0].position - 1) * count + lane
        self._ids.add_many(
            [event.id for event in events], range(first, first + len(events) * count, count)
        )

    def _version(self, stream: str) -> int:
        rows = self._streams.get(stream)
        if rows is None:
            return 0
        return 1 if isinstance(rows, int) else len(rows)

    def _at(self, ref: int) -> RecordedEvent:
        row, lane = divmod(ref, self.lane_count)
        return self._lanes[lane].get(row)

    def _held_older(self) -> None:
        """An append holds an event at an older version: reads upcast from now on."""
        if self.registry is not None:
            self._upcasting = self.registry.upcasting

    def _get_event(self, event_id: bytes) -> RecordedEvent | None:
        found = self._recent.get(event_id)
        if found is not None:
            return found
        ref = self._ids.get(event_id)
        return None if ref is None else self._at(ref)

    # -- reading ---------------------------------------------------------------------------

    def head(self, lane: int) -> int:
        return len(self._lanes[lane])

    def read(
        self,
        lane: int,
        after: int,
        upto: int | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        with self._lock:
            log = self._lanes[lane]
            window = log.slice(after, len(log) if upto is None else upto)
        if types is not None:
            wanted = frozenset(types)
            window = [event for event in window if event.type in wanted]
        return current_events(self._upcasting, window if limit is None else window[:limit])

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        with self._lock:
            rows = _refs(self._streams.get(stream))[max(after_version, 0) : upto_version]
            found = self._lanes[lane_of(stream, self.lane_count)].of_stream(stream, rows)
        return current_events(self._upcasting, found)

    def last_event(self, stream: str) -> RecordedEvent | None:
        with self._lock:
            rows = _refs(self._streams.get(stream))
            if not rows:
                return None
            last = self._lanes[lane_of(stream, self.lane_count)].get(rows[-1])
        return current_event(self._upcasting, last)

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return self._version(stream)

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        with self._lock:
            refs = _refs(self._by_causation.get(causation_id))
            if self.lane_count > 1:  # commit order; the port wants lane, then position
                refs = sorted(refs, key=lambda ref: (ref % self.lane_count, ref))
            found = [self._at(ref) for ref in refs]
        return current_events(self._upcasting, found)

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        """:meth:`EventStore.emitted_by` of each source, under one lock hold: the events
        caused by the source whose ids carry ``processor``'s prefix, in id order."""
        found: dict[bytes, list[RecordedEvent]] = {}
        caused, at = self._by_causation, self._at
        with self._lock:
            for source in sources:
                refs = caused.get(source.id)
                if refs is None:
                    found[source.id] = []
                    continue
                prefix = emitter_prefix(processor, source.id)
                mine = [
                    event for event in map(at, _refs(refs)) if event.id[:EMITTER_PREFIX] == prefix
                ]
                if len(mine) > 1:
                    mine.sort(key=_by_id)
                found[source.id] = mine
        return current_sets(self._upcasting, found)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._lock:
            yield

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        with self._lock:
            found = self._get_event(event_id)
        return current_event(self._upcasting, found)

    def settle(self) -> None:
        """Finish packing what is due (packing otherwise runs in the background): for
        measuring the store's size. Changes nothing that can be read."""
        with self._lock:
            for log in self._lanes:
                log.settle()

    def checkpoint(self, processor: str, lane: int) -> int:
        return self._checkpoints.get((processor, lane), 0)

    def checkpoint_progress(self, processor: str, lane: int) -> CheckpointProgress:
        with self._lock:
            key = (processor, lane)
            return CheckpointProgress(self._checkpoints.get(key, 0), self._moved_at.get(key))

    def checkpoints(self) -> dict[str, dict[int, int]]:
        with self._lock:
            result: dict[str, dict[int, int]] = defaultdict(dict)
            for (processor, lane), position in self._checkpoints.items():
                result[processor][lane] = position
            return dict(result)

    def read_view(self, view: str, key: str) -> bytes | None:
        with self._lock:
            return self._views.get(view, {}).get(key)

    def view_rows(self, view: str) -> Iterator[tuple[str, bytes]]:
        with self._lock:
            rows = sorted(self._views.get(view, {}).items())
        return iter(rows)

    # -- lifecycle -------------------------------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def _notify(self) -> None:
        self._listeners.notify()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed

    def close(self) -> None:
        self._closed = True
