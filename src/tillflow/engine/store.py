"""The event store port: what every backend (memory, SQLite, later PostgreSQL) provides.

A store records events in *lanes*. Within a lane, positions are dense, start at 1, follow
commit order and are never reused, so a reader that has seen position ``p`` has seen every
event at or below ``p`` that will ever exist: there are no gaps to detect.

Processors keep a durable *checkpoint* per lane. :meth:`EventStore.commit_batch` writes a
processor's effects (events it emits, view rows it writes) and its new checkpoint in one
transaction, guarded by a compare-and-set on the old checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tillflow.engine.errors import (
    CheckpointPassed,
    EventIdReused,
    InvalidEvent,
    TillflowError,
    UnknownEventType,
)
from tillflow.engine.ids import EMITTER_PREFIX, emitter_prefix, format_id
from tillflow.engine.outage import OutageBackoff
from tillflow.engine.types import (
    ANY_VERSION,
    MAX_STREAM_LENGTH,
    MAX_TYPE_LENGTH,
    NewEvent,
    Receipt,
    RecordedEvent,
)
from tillflow.engine.upcasting import Upcasters, Upcasting

Durability = Literal["full", "normal", "off"]
"""How an acknowledged write survives a power cut: ``full`` (fsync at every commit, the
default), ``normal`` (survives a process crash, may lose the last commits on power loss),
``off`` (tests and benchmarks only)."""

CommitListener = Callable[[], None]
"""Called (from the writing thread) after every commit that recorded events or checkpoints."""


class Emitted(msgspec.Struct, gc=False):
    """Events a processor emits to one stream while handling a batch (a Struct: a
    processor makes one per stream it writes, and a dataclass takes ~0.5 µs to make, this
    ~0.15)."""

    stream: str
    events: list[NewEvent]
    expected_version: int = ANY_VERSION
    checked: bool = False
    """Already validated where it was made (by :class:`Session.emit`)."""


class CheckpointProgress(msgspec.Struct, frozen=True):
    """A processor's durable checkpoint on a lane and when it last moved."""

    position: int
    moved_at: float | None
    """Unix time (the committing process's clock) of the commit that moved it last;
    ``None`` if it never committed, or if the backend keeps no time."""


class AppendRequest(msgspec.Struct, frozen=True):
    """One append of :meth:`EventStore.append_many` (a Struct: a checkout's tills make one
    per checkout, and a frozen dataclass takes ~0.6 µs to make, this ~0.1)."""

    stream: str
    events: Sequence[NewEvent]
    expected_version: int = ANY_VERSION


@dataclass(slots=True)
class BatchEffects:
    """Everything one processor batch writes, committed with its checkpoint."""

    emitted: list[Emitted] = field(default_factory=list)
    views: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    """(view, key) → encoded row, or ``None`` to delete the row."""
    read: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    """(view, key) → the committed row the batch read (``None``: absent). A store whose
    lanes several workers share commits the batch only if every one is unchanged; a store
    with one owner may ignore it."""
    not_past: dict[tuple[str, int], int] = field(default_factory=dict)
    """(processor, lane) → position: the batch commits only while that checkpoint is at
    most there, checked in the committing transaction (a rebuild's switch: the live version
    has not passed the new one since they were compared); else :class:`CheckpointPassed`,
    nothing written. Every store honours it."""

    def is_empty(self) -> bool:
        return not self.emitted and not self.views


class EventRegistry:
    """The event types a system knows. With a registry, a store refuses to append unknown
    types (or a schema version newer than the type's current one) and processors may only
    subscribe to known ones. With ``upcasters`` (checked here, see
    :mod:`~tillflow.engine.upcasting`), stores give every event they read at its type's
    current version."""

    def __init__(
        self,
        types: Mapping[str, type] | Collection[str] = (),
        upcasters: Upcasters | None = None,
    ) -> None:
        self._types: dict[str, type | None] = (
            dict(types) if isinstance(types, Mapping) else dict.fromkeys(types)
        )
        self.upcasting = Upcasting(upcasters, self._types) if upcasters else None
        """What stores read events through (``None``: no upcasters, nothing to do)."""
        self._versions = (
            self.upcasting.versions if self.upcasting else dict.fromkeys(self._types, 1)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def check(self, name: str) -> None:
        """Raise :class:`UnknownEventType` unless ``name`` is registered."""
        if name not in self._types:
            raise UnknownEventType(name, self.names())

    def version(self, name: str) -> int:
        """The current schema version of ``name``; :class:`UnknownEventType` if unknown."""
        version = self._versions.get(name)
        if version is None:
            raise UnknownEventType(name, self.names())
        return version

    def decode(self, event: RecordedEvent) -> object:
        """The event's data as its registered type (or plain JSON values if none given)."""
        if event.type not in self._types:
            raise UnknownEventType(event.type, self.names())
        as_type = self._types[event.type]
        return event.payload() if as_type is None else event.decode(as_type)


def check_not_past(effects: BatchEffects, checkpoint: Callable[[str, int], int]) -> None:
    """Raise :class:`CheckpointPassed` for the first of ``effects.not_past`` whose
    checkpoint (as ``checkpoint(processor, lane)`` reads it in the committing transaction,
    0 if none) is past its bound. Stores call it before they write anything."""
    for (processor, lane), bound in sorted(effects.not_past.items()):
        actual = checkpoint(processor, lane)
        if actual > bound:
            raise CheckpointPassed(processor, lane, bound, actual)


def validate_stream(stream: str) -> None:
    """Raise :class:`InvalidEvent` unless ``stream`` is a usable stream name."""
    if not isinstance(stream, str) or not stream:
        raise InvalidEvent("stream", stream, "must be a non-empty string")
    if len(stream) > MAX_STREAM_LENGTH:
        raise InvalidEvent("stream", stream[:40] + "…", f"longer than {MAX_STREAM_LENGTH}")


def validate_append(
    stream: str, events: Sequence[NewEvent], registry: EventRegistry | None
) -> bool:
    """Raise :class:`InvalidEvent` / :class:`UnknownEventType` for a malformed append (or a
    schema version newer than its type's current one). Return whether an event is at an
    older version (written as an older release would): the store's copies of it then need
    upcasting when read."""
    validate_stream(stream)
    older = False
    for event in events:
        if not isinstance(event, NewEvent):
            raise InvalidEvent("event", event, "must be a NewEvent")
        if not event.type or len(event.type) > MAX_TYPE_LENGTH:
            raise InvalidEvent("type", event.type, f"must be 1..{MAX_TYPE_LENGTH} characters")
        if event.id is not None and (not isinstance(event.id, bytes) or len(event.id) != 16):
            raise InvalidEvent("id", event.id, "must be 16 bytes (see tillflow.engine.ids)")
        if event.schema_version < 1:
            raise InvalidEvent("schema_version", event.schema_version, "must be ≥ 1")
        if registry is not None:
            current = registry.version(event.type)
            if event.schema_version != current:
                if event.schema_version > current:
                    raise InvalidEvent(
                        "schema_version",
                        event.schema_version,
                        f"{event.type} is at version {current} in this release",
                    )
                older = True
    return older


def encode_data(event: NewEvent) -> bytes:
    """The JSON encoding of an event's data; :class:`InvalidEvent` if it cannot be encoded."""
    try:
        return msgspec.json.encode(event.data)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidEvent("data", type(event.data).__name__, str(error)) from error


def encode_all(events: Sequence[NewEvent]) -> list[bytes]:
    """:func:`encode_data` of every event, in one call (the failing one raises)."""
    encode = msgspec.json.encode
    try:
        return [encode(event.data) for event in events]
    except (TypeError, ValueError, OverflowError):
        return [encode_data(event) for event in events]


def check_same_content(recorded: RecordedEvent, stream: str, event: NewEvent, data: bytes) -> None:
    """Raise :class:`EventIdReused` unless ``recorded`` is the same event as ``event``."""
    for name, old, new in (
        ("stream", recorded.stream, stream),
        ("type", recorded.type, event.type),
        ("data", recorded.data, data),
        ("schema_version", recorded.schema_version, event.schema_version),
    ):
        if old != new:
            raise EventIdReused(format_id(recorded.id), name)


def repeat_receipt(
    stream: str,
    events: Sequence[NewEvent],
    encoded: Sequence[bytes],
    lookup: Callable[[bytes], RecordedEvent | None],
) -> Receipt | None:
    """If ``events`` were all recorded before (same ids, same content), their original
    receipt; ``None`` if none of their ids is recorded. Raises :class:`EventIdReused` when
    an id is recorded with other content or only some of them are recorded."""
    found: list[RecordedEvent] = []
    for event, data in zip(events, encoded, strict=True):
        if event.id is None:
            continue
        recorded = lookup(event.id)
        if recorded is not None:
            check_same_content(recorded, stream, event, data)
            found.append(recorded)
    if not found:
        return None
    if len(found) != len(events):
        raise EventIdReused(format_id(found[0].id), "batch")
    return receipt_of(found)


class CommitListeners:
    """The listeners of one store object; a listener that raises is ignored (it must never
    stop a writer)."""

    def __init__(self) -> None:
        self._listeners: list[CommitListener] = []

    def add(self, listener: CommitListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def notify(self) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):
                listener()


def receipt_of(recorded: Sequence[RecordedEvent]) -> Receipt:
    """The receipt that appending ``recorded`` returned (or would have)."""
    positions: dict[int, int] = {}
    streams: dict[str, int] = {}
    for event in recorded:
        positions[event.lane] = max(event.position, positions.get(event.lane, 0))
        streams[event.stream] = max(event.version, streams.get(event.stream, 0))
    return Receipt(positions=positions, streams=streams)


class EventStore(ABC):
    """The port. Methods are thread-safe and synchronous; ``*_async`` variants never block
    the event loop. Reads see committed data only."""

    lane_count: int
    registry: EventRegistry | None
    outage_backoff: OutageBackoff | None = None
    """How a runtime's lanes retry while this store is unavailable, if not its default
    (a store whose retries cost the database nothing retries sooner)."""
    checks_rows_read: bool = False
    """Whether :meth:`commit_batch` refuses a batch when a view row it read
    (``effects.read``) is no longer what it read: processors then remember rows across
    batches instead of reading each again."""

    # -- writing ---------------------------------------------------------------------------

    @abstractmethod
    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        """Append ``events`` to ``stream`` atomically; return the receipt once durable.

        ``expected_version``: the stream's current version (``NO_STREAM`` = 0 for a new
        stream) or ``ANY_VERSION``. Raises :class:`ConcurrencyConflict` (stream, expected,
        actual) on mismatch, unless every event's id is already recorded with the same
        content, in which case the original receipt is returned. Raises
        :class:`EventIdReused` when an id is recorded with other content,
        :class:`InvalidEvent` / :class:`UnknownEventType` for bad input. Nothing is written
        when it raises.
        """

    async def append_async(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        """:meth:`append` without blocking the event loop. Concurrent calls share commits."""
        return await asyncio.to_thread(self.append, stream, events, expected_version)

    @abstractmethod
    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
    ) -> Receipt:
        """Commit a processor's effects and move its checkpoint on ``lane`` from
        ``expected_checkpoint`` to ``new_checkpoint``, in one transaction.

        Raises :class:`CheckpointConflict` (nothing written) if the checkpoint is not at
        ``expected_checkpoint``. Returns the receipt of the emitted events.
        """

    # -- reading ---------------------------------------------------------------------------

    @abstractmethod
    def head(self, lane: int) -> int:
        """The last position recorded on ``lane`` (0 when empty)."""

    def heads(self) -> dict[int, int]:
        """The head of every lane."""
        return {lane: self.head(lane) for lane in range(self.lane_count)}

    def probe_writes(self) -> None:
        """Return once the store would take a write now; raise :class:`StoreUnavailable`
        if it would not (writes nothing). By default a read of the heads: a backend whose
        reads work while its writes do not says so itself."""
        self.heads()

    @abstractmethod
    def read(
        self,
        lane: int,
        after: int,
        upto: int | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of ``lane`` with ``after < position <= upto`` in position order, only of
        ``types`` if given, at most ``limit`` of them."""

    @abstractmethod
    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        """The events of ``stream`` with ``after_version < version <= upto_version``, in
        version order."""

    @abstractmethod
    def last_event(self, stream: str) -> RecordedEvent | None:
        """The event of ``stream`` with the highest version, if any."""

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """Append several independent requests, sharing transactions where the backend can;
        per request its receipt, or the error that refused it (nothing of it written).
        Errors other than refusals (the database failing) are raised."""
        outcomes: list[Receipt | TillflowError] = []
        for request in requests:
            try:
                outcomes.append(
                    self.append(request.stream, request.events, request.expected_version)
                )
            except TillflowError as refusal:
                outcomes.append(refusal)
        return outcomes

    @abstractmethod
    def stream_version(self, stream: str) -> int:
        """The current version of ``stream`` (0 if it has no events)."""

    @abstractmethod
    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        """Every event caused by the event ``causation_id``, in lane and position order."""

    def emitted_by(self, processor: str, source: RecordedEvent) -> list[RecordedEvent]:
        """The events ``processor`` emitted while handling ``source``, in emission order;
        empty if it has not committed its handling of ``source``. Complete whenever not
        empty: a processor commits all effects of one event in one transaction."""
        prefix = emitter_prefix(processor, source.id)
        found = [e for e in self.find_by_causation(source.id) if e.id[:EMITTER_PREFIX] == prefix]
        return sorted(found, key=lambda event: event.id)

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        """:meth:`emitted_by` for several sources at once (by source id), in as few reads
        as the backend can manage: what a processor joining a whole batch to an upstream
        processor's effects asks."""
        return {source.id: self.emitted_by(processor, source) for source in sources}

    @abstractmethod
    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        """The event recorded with ``event_id``, if any."""

    def iter_all(self, lane: int, batch: int = 10_000) -> Iterator[RecordedEvent]:
        """Every event of ``lane`` in order, read ``batch`` at a time (bounded memory)."""
        after = 0
        while True:
            events = self.read(lane, after, limit=batch)
            if not events:
                return
            yield from events
            after = events[-1].position

    @abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A block in which every read of the calling thread sees one committed state: use
        it to read rows that must agree with each other (a report's rows and totals).
        Writers are not blocked on SQLite (WAL); keep the block short."""

    # -- checkpoints and views -------------------------------------------------------------

    @abstractmethod
    def checkpoint(self, processor: str, lane: int) -> int:
        """The durable checkpoint of ``processor`` on ``lane`` (0 if it never committed)."""

    @abstractmethod
    def checkpoints(self) -> dict[str, dict[int, int]]:
        """Every processor's checkpoints: name → lane → position."""

    @abstractmethod
    def read_view(self, view: str, key: str) -> bytes | None:
        """The committed, encoded row ``key`` of ``view``, or ``None``."""

    @abstractmethod
    def view_rows(self, view: str) -> Iterator[tuple[str, bytes]]:
        """Every committed (key, encoded row) of ``view`` in key order."""

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener`` after every commit made through this store object; returns a
        function that removes it. Listeners must be quick and must not raise."""

    def checkpoint_progress(self, processor: str, lane: int) -> CheckpointProgress:
        """:meth:`checkpoint` and when it last moved, in one read (what a stall is judged
        by: :mod:`tillflow.engine.stalls`). A backend that keeps no time answers
        ``moved_at=None``."""
        return CheckpointProgress(self.checkpoint(processor, lane), None)

    @abstractmethod
    def close(self) -> None:
        """Release connections and threads. Idempotent."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
