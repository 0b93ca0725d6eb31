"""In-memory backend: for tests, the simulator, benchmarks and embedded use. Same contract
as SQLite, nothing durable. Any number of lanes.

Compact: each lane is a :class:`LaneLog` (recent events as objects, older ones packed in
compressed blocks) and the indexes hold ints, not objects: ids in an :class:`IdIndex`,
streams as rows of their lane, causation as references (``row * lane_count + lane``).
A stream or a causation with one event holds a plain int, with more an ``array``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Final, TypeAlias

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    StoreClosed,
    TillflowError,
)
from tillflow.engine.id_index import IdIndex
from tillflow.engine.ids import new_event_id
from tillflow.engine.lane_log import HOT_EVENTS, WINDOW_EVENTS, LaneLog
from tillflow.engine.lanes import lane_of
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CommitListener,
    CommitListeners,
    EventRegistry,
    EventStore,
    encode_data,
    receipt_of,
    repeat_receipt,
    validate_append,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt, RecordedEvent

_Refs: TypeAlias = "int | array[int]"
"""One int, or an ``array('Q')`` of them in commit order."""
_NO_REFS: Final[tuple[int, ...]] = ()


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
        self._lock = threading.RLock()
        self._lanes = [LaneLog(hot, window) for _ in range(lane_count)]
        self._streams: dict[str, _Refs] = {}
        """Stream → its rows (in its lane), in version order."""
        self._ids = IdIndex()
        """Id → reference (``row * lane_count + lane``)."""
        self._by_causation: dict[bytes, _Refs] = {}
        """Causation id → references of the events it caused, in commit order."""
        self._checkpoints: dict[tuple[str, int], int] = {}
        self._views: dict[str, dict[str, bytes]] = defaultdict(dict)
        self._listeners = CommitListeners()
        self._closed = False

    # -- writing ---------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        validate_append(stream, events, self.registry)
        with self._lock:
            self._check_open()
            plan = self._plan(stream, events, expected_version, {})
            if isinstance(plan, Receipt):
                return plan
            receipt = self._apply([plan], time.time())
        self._notify()
        return receipt

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """Every request under one lock hold and one notification (one commit to the
        listeners), each checked and refused on its own, as SQLite shares a transaction."""
        outcomes: list[Receipt | TillflowError] = []
        now = time.time()
        with self._lock:
            self._check_open()
            for request in requests:
                try:
                    validate_append(request.stream, request.events, self.registry)
                    plan = self._plan(request.stream, request.events, request.expected_version, {})
                    outcomes.append(plan if isinstance(plan, Receipt) else self._apply([plan], now))
                except TillflowError as refusal:
                    outcomes.append(refusal)
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
        for emitted in effects.emitted:
            if not emitted.checked:
                validate_append(emitted.stream, emitted.events, self.registry)
        with self._lock:
            self._check_open()
            actual = self._checkpoints.get((processor, lane), 0)
            if actual != expected_checkpoint:
                raise CheckpointConflict(processor, lane, expected_checkpoint, actual)
            plans: list[_Plan] = []
            pending: dict[str, int] = {}
            for emitted in effects.emitted:
                plan = self._plan(emitted.stream, emitted.events, emitted.expected_version, pending)
                if isinstance(plan, _Plan):
                    plans.append(plan)
            receipt = self._apply(plans, time.time())
            self._checkpoints[(processor, lane)] = new_checkpoint
            for (view, key), value in effects.views.items():
                if value is None:
                    self._views[view].pop(key, None)
                else:
                    self._views[view][key] = value
        self._notify()
        return receipt

    def _plan(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        pending_versions: dict[str, int],
    ) -> _Plan | Receipt:
        """Validate one append against current state; return what to record, or the original
        receipt when it is an exact repeat. ``pending_versions`` carries versions planned
        earlier in the same transaction."""
        current = pending_versions.get(stream)
        if current is None:
            current = self._version(stream)
        encoded = [encode_data(event) for event in events]
        known = self._ids.get
        if any(event.id is not None and known(event.id) is not None for event in events):
            repeat = self._repeat_of(stream, events, encoded)  # the rule: store.py's
            if repeat is not None:
                return repeat
        if expected_version not in (ANY_VERSION, current):
            raise ConcurrencyConflict(stream, expected_version, current)
        pending_versions[stream] = current + len(events)
        return _Plan(stream, events, encoded, current)

    def _repeat_of(
        self, stream: str, events: Sequence[NewEvent], encoded: Sequence[bytes]
    ) -> Receipt | None:
        return repeat_receipt(stream, events, encoded, self._get_event)

    def _apply(self, plans: list[_Plan], now: float) -> Receipt:
        recorded: list[RecordedEvent] = []
        lane_count, lanes, streams = self.lane_count, self._lanes, self._streams
        add_id, caused = self._ids.add, self._by_causation
        for plan in plans:
            stream = plan.stream
            lane = lane_of(stream, lane_count)
            log = lanes[lane]
            version = plan.base_version
            for event, data in zip(plan.events, plan.encoded, strict=True):
                row = len(log)
                version += 1
                record = RecordedEvent(
                    event.id or new_event_id(),
                    stream,
                    version,
                    lane,
                    row + 1,
                    event.type,
                    event.schema_version,
                    data,
                    now,
                    event.causation_id,
                    event.correlation_id,
                )
                log.append(record)
                recorded.append(record)
                rows = streams.get(stream)
                if rows is None:
                    streams[stream] = row
                elif type(rows) is int:
                    streams[stream] = array("Q", (rows, row))
                else:
                    rows.append(row)  # type: ignore[union-attr]
                ref = row * lane_count + lane
                add_id(record.id, ref)
                cause = event.causation_id
                if cause is not None:
                    refs = caused.get(cause)
                    if refs is None:
                        caused[cause] = ref
                    elif type(refs) is int:
                        caused[cause] = array("Q", (refs, ref))
                    else:
                        refs.append(ref)  # type: ignore[union-attr]
        return receipt_of(recorded)

    def _version(self, stream: str) -> int:
        rows = self._streams.get(stream)
        if rows is None:
            return 0
        return 1 if isinstance(rows, int) else len(rows)

    def _at(self, ref: int) -> RecordedEvent:
        row, lane = divmod(ref, self.lane_count)
        return self._lanes[lane].get(row)

    def _get_event(self, event_id: bytes) -> RecordedEvent | None:
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
        return window if limit is None else window[:limit]

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        with self._lock:
            rows = _refs(self._streams.get(stream))[max(after_version, 0) : upto_version]
            return self._lanes[lane_of(stream, self.lane_count)].of_stream(stream, rows)

    def last_event(self, stream: str) -> RecordedEvent | None:
        with self._lock:
            rows = _refs(self._streams.get(stream))
            if not rows:
                return None
            return self._lanes[lane_of(stream, self.lane_count)].get(rows[-1])

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return self._version(stream)

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        with self._lock:
            refs = _refs(self._by_causation.get(causation_id))
            if self.lane_count > 1:  # commit order; the port wants lane, then position
                refs = sorted(refs, key=lambda ref: (ref % self.lane_count, ref))
            return [self._at(ref) for ref in refs]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._lock:
            yield

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        with self._lock:
            return self._get_event(event_id)

    def settle(self) -> None:
        """Finish packing what is due (packing otherwise runs in the background): for
        measuring the store's size. Changes nothing that can be read."""
        with self._lock:
            for log in self._lanes:
                log.settle()

    def checkpoint(self, processor: str, lane: int) -> int:
        return self._checkpoints.get((processor, lane), 0)

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


class _Plan:
    __slots__ = ("base_version", "encoded", "events", "stream")

    def __init__(
        self, stream: str, events: Sequence[NewEvent], encoded: list[bytes], base_version: int
    ) -> None:
        self.stream = stream
        self.events = events
        self.encoded = encoded
        self.base_version = base_version
