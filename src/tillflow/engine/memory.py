"""In-memory backend: for tests, the simulator and benchmarks. Same contract as SQLite,
nothing durable. Any number of lanes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    StoreClosed,
)
from tillflow.engine.ids import new_event_id
from tillflow.engine.lanes import lane_of
from tillflow.engine.store import (
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


class MemoryEventStore(EventStore):
    """Everything in dictionaries behind one lock; commits are atomic (validate, then apply)."""

    def __init__(self, lane_count: int = 1, registry: EventRegistry | None = None) -> None:
        if lane_count < 1:
            raise ValueError("lane_count must be ≥ 1")
        self.lane_count = lane_count
        self.registry = registry
        self._lock = threading.RLock()
        self._lanes: list[list[RecordedEvent]] = [[] for _ in range(lane_count)]
        self._streams: dict[str, list[RecordedEvent]] = defaultdict(list)
        self._by_id: dict[bytes, RecordedEvent] = {}
        self._by_causation: dict[bytes, list[RecordedEvent]] = defaultdict(list)
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
        current = pending_versions.get(stream, len(self._streams.get(stream, ())))
        encoded = [encode_data(event) for event in events]
        repeat = self._repeat_of(stream, events, encoded)
        if repeat is not None:
            return repeat
        if expected_version not in (ANY_VERSION, current):
            raise ConcurrencyConflict(stream, expected_version, current)
        pending_versions[stream] = current + len(events)
        return _Plan(stream, list(events), encoded, current)

    def _repeat_of(
        self, stream: str, events: Sequence[NewEvent], encoded: Sequence[bytes]
    ) -> Receipt | None:
        return repeat_receipt(stream, events, encoded, self._by_id.get)

    def _apply(self, plans: list[_Plan], now: float) -> Receipt:
        recorded: list[RecordedEvent] = []
        for plan in plans:
            lane = lane_of(plan.stream, self.lane_count)
            log = self._lanes[lane]
            history = self._streams[plan.stream]
            for index, (event, data) in enumerate(zip(plan.events, plan.encoded, strict=True)):
                record = RecordedEvent(
                    id=event.id or new_event_id(),
                    stream=plan.stream,
                    version=plan.base_version + index + 1,
                    lane=lane,
                    position=len(log) + 1,
                    type=event.type,
                    schema_version=event.schema_version,
                    data=data,
                    recorded_at=now,
                    causation_id=event.causation_id,
                    correlation_id=event.correlation_id,
                )
                log.append(record)
                history.append(record)
                self._by_id[record.id] = record
                if record.causation_id is not None:
                    self._by_causation[record.causation_id].append(record)
                recorded.append(record)
        return receipt_of(recorded)

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
            end = len(log) if upto is None else min(upto, len(log))
            window = log[max(after, 0) : max(end, 0)]
        if types is not None:
            wanted = frozenset(types)
            window = [event for event in window if event.type in wanted]
        return window if limit is None else window[:limit]

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        with self._lock:
            return list(self._streams.get(stream, ())[max(after_version, 0) : upto_version])

    def last_event(self, stream: str) -> RecordedEvent | None:
        with self._lock:
            history = self._streams.get(stream)
            return history[-1] if history else None

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, ()))

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        with self._lock:
            found = list(self._by_causation.get(causation_id, ()))
        return sorted(found, key=lambda event: (event.lane, event.position))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._lock:
            yield

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        return self._by_id.get(event_id)

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
        self, stream: str, events: list[NewEvent], encoded: list[bytes], base_version: int
    ) -> None:
        self.stream = stream
        self.events = events
        self.encoded = encoded
        self.base_version = base_version
