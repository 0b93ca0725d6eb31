"""A processor: a named, durable consumer of the log, and the session its handler writes through.

A handler is called once per event it subscribed to, with a :class:`Session`. Everything it
wants to change goes through the session: events it emits and view rows it writes. The
session's effects are committed together with the processor's new checkpoint, in one
transaction, so an event's effects land exactly once however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from tillflow.engine.errors import InvalidEvent
from tillflow.engine.failure import Parking
from tillflow.engine.ids import derived_id_at, derived_id_base
from tillflow.engine.store import BatchEffects, Emitted, EventStore, validate_stream
from tillflow.engine.types import ANY_VERSION, NewEvent, RecordedEvent

T = TypeVar("T")
MAX_NAME_LENGTH: Final = 100
MAX_LINGER: Final = 60.0

Handler = Callable[[RecordedEvent, "Session"], None]
"""``handler(event, session)``: apply one event. Raise to refuse it: the processor stops
before the event (nothing of it is committed) and the failure policy decides what next.
Handlers must change the world only through the session; they may be called again for
the same event after a crash or a failure (at-least-once delivery, exactly-once effects)."""

Preparation = Callable[[EventStore, int], None]
"""``prepare(store, lane)``: see :class:`Processor`."""


@dataclass(frozen=True)
class Processor:
    """The declaration of a processor.

    ``types``: the event types the handler wants (``None``: all). Events of other types are
    still *scanned*: the checkpoint passes them, so they never hold back dependants.
    ``after``: processors that must have scanned an event before this one may read it
    (sequence barrier). ``batch_size``: at most this many positions scanned per transaction.
    ``parking``: park failing events by key instead of stopping (``None``: stop).
    ``spread``: whether workers sharing lanes may split this processor's lanes among them
    (``False``: one worker at a time runs all of them, for a processor whose lanes write the
    same streams or rows: split over workers, their batches would keep refusing each other;
    in one worker its lanes take turns in one thread, so they never do). ``weight``: how
    much of a worker the processor takes compared with the others (≥ 1): the groups run
    whole are spread out over the workers by their summed weights, so that two heavy ones
    do not end up on one worker while another runs the light ones. ``linger``: seconds a
    lane waits between the starts of its batches (0: none), so that a processor nobody is
    waiting for in the moment (receipt numbers, a cash-up) takes fewer, larger batches and
    leaves the writer and the CPU to those on a hot path (:mod:`~tillflow.engine.lingering`);
    a :meth:`~tillflow.engine.Runtime.wait_for` naming it, a drain and a stop cut it short.
    ``prepare``: called as ``prepare(store, lane)`` by whichever worker runs the lane, before
    its first batch there, again after a failure of it and whenever the lane comes to the
    worker from another: work that must be done before the handler sees the lane, such as
    taking over from a processor this one replaces (:mod:`~tillflow.engine.retiring`). It
    must be idempotent: several workers may run it, one after another or at once.
    """

    name: str
    handler: Handler
    types: frozenset[str] | None = None
    after: tuple[str, ...] = ()
    batch_size: int = 2000
    parking: Parking | None = None
    spread: bool = True
    weight: int = 1
    linger: float = 0.0
    prepare: Preparation | None = None

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_NAME_LENGTH or not self.name.isprintable():
            raise InvalidEvent("processor name", self.name, "must be 1..100 printable characters")
        if self.batch_size < 1:
            raise InvalidEvent("batch_size", self.batch_size, "must be ≥ 1")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight < 1:
            raise InvalidEvent("weight", self.weight, "must be an integer ≥ 1")
        if isinstance(self.after, str):
            raise InvalidEvent("after", self.after, "must be a sequence of names, not a string")
        if (
            isinstance(self.linger, bool)
            or not isinstance(self.linger, (int, float))
            or not 0 <= self.linger <= MAX_LINGER
        ):
            raise InvalidEvent("linger", self.linger, f"must be 0 to {MAX_LINGER:g} seconds")
        if self.prepare is not None and not callable(self.prepare):
            raise InvalidEvent("prepare", self.prepare, "must be a function of (store, lane)")
        object.__setattr__(self, "after", tuple(self.after))
        if self.types is not None:
            object.__setattr__(self, "types", frozenset(self.types))


def processor(
    name: str,
    *,
    types: Collection[str] | None = None,
    after: Collection[str] = (),
    batch_size: int = 2000,
    parking: Parking | None = None,
    spread: bool = True,
    weight: int = 1,
    linger: float = 0.0,
) -> Callable[[Handler], Processor]:
    """Decorator form: ``@processor("inventory", types=["CheckedOut"])``."""

    def wrap(handler: Handler) -> Processor:
        return Processor(
            name,
            handler,
            None if types is None else frozenset(types),
            tuple(after),
            batch_size,
            parking,
            spread,
            weight,
            linger,
        )

    return wrap


_DELETED: Final = object()


@dataclass
class Session:
    """The unit of work of one processor batch.

    View rows are buffered: :meth:`get` sees this batch's own writes first, then committed
    rows. Emitted events get deterministic ids (processor, source event, index), a causation
    id (the source event) and its correlation id.
    """

    store: EventStore
    processor: str
    effects: BatchEffects = field(default_factory=BatchEffects)
    _rows: dict[tuple[str, str], Any] = field(default_factory=dict)
    _source: RecordedEvent | None = None
    _emitted_for_source: int = 0
    _id_base: bytes | None = None
    scratch: dict[Any, Any] = field(default_factory=dict)
    """Per-batch memory for the handler (e.g. state it loaded); dropped with the batch."""
    cache: dict[Any, Any] = field(default_factory=dict)
    """Memory that outlives the batch (the processor's, in this process): emptied when a
    batch fails to commit and lost in a crash, so keep only what can be reloaded, and guard
    writes that depend on it (e.g. emit with ``expected_version``)."""
    batch: list[RecordedEvent] = field(default_factory=list)
    """The events of the batch being handled (set by the engine): what
    :meth:`emitted_by` reads ahead for."""
    _joined: dict[str, dict[bytes, list[RecordedEvent]]] = field(default_factory=dict)
    known_rows: dict[tuple[str, str], bytes | None] | None = None
    """Committed rows as the processor last met them (set by the engine on a store that
    checks at commit that each row read is unchanged): :meth:`get` reads the others only."""

    def begin(self, source: RecordedEvent) -> None:
        """Start handling ``source`` (called by the engine before each handler call)."""
        self._source = source
        self._emitted_for_source = 0
        self._id_base = None

    @property
    def source(self) -> RecordedEvent:
        """The event being handled."""
        if self._source is None:
            raise RuntimeError("no event is being handled")
        return self._source

    # -- events ----------------------------------------------------------------------------

    def emit(
        self, stream: str, event_type: str, data: Any, expected_version: int = ANY_VERSION
    ) -> bytes:
        """Record an event on ``stream`` as an effect of the event being handled; return its
        id. ``expected_version`` guards the stream as in ``EventStore.append``."""
        source = self.source
        registry = self.store.registry
        # an unknown type is a handler bug: it fails the handler, not the commit
        version = 1 if registry is None else registry.version(event_type)
        validate_stream(stream)
        if self._id_base is None:
            self._id_base = derived_id_base(self.processor, source.id)
        event_id = derived_id_at(self._id_base, self._emitted_for_source)
        self._emitted_for_source += 1
        event = NewEvent(
            type=event_type,
            data=data,
            id=event_id,
            schema_version=version,
            causation_id=source.id,
            correlation_id=source.correlation_id or source.id,
        )
        emitted = self.effects.emitted
        last = emitted[-1] if emitted else None
        if (
            last is not None
            and last.stream == stream
            and (
                expected_version == last.expected_version == ANY_VERSION
                or (
                    last.expected_version != ANY_VERSION
                    and expected_version == last.expected_version + len(last.events)
                )
            )
        ):
            last.events.append(event)
        else:
            emitted.append(Emitted(stream, [event], expected_version, checked=True))
        return event_id

    # -- upstream effects ------------------------------------------------------------------

    def emitted_by(
        self, processor: str, source: RecordedEvent | None = None
    ) -> list[RecordedEvent]:
        """The events ``processor`` emitted while handling ``source`` (default: the event
        being handled), as :meth:`EventStore.emitted_by` gives them.

        The first ask reads them for every later event of the batch of the same type as
        well, in one :meth:`EventStore.emitted_by_many`: a handler joining each event to an
        upstream processor's effects (behind its barrier, so they are all committed) costs
        a read per batch, not per event. Do not change the list returned."""
        source = self.source if source is None else source
        joined = self._joined.setdefault(processor, {})
        found = joined.get(source.id)
        if found is None:
            ahead = [
                event
                for event in self.batch
                if event.position > source.position
                and event.type == source.type
                and event.id not in joined
            ]
            joined.update(self.store.emitted_by_many(processor, [source, *ahead]))
            found = joined[source.id]
        return found

    # -- view rows -------------------------------------------------------------------------

    def get(self, view: str, key: str, as_type: type[T] | None = None) -> Any:
        """The row ``key`` of ``view`` (this batch's write if any), decoded; ``None`` if absent."""
        found = self._rows.get((view, key), _MISSING)
        if found is _DELETED:
            return None
        if found is not _MISSING:
            return found
        known = self.known_rows
        raw = _MISSING if known is None else known.get((view, key), _MISSING)
        if raw is _MISSING:
            raw = self.store.read_view(view, key)
        self.effects.read.setdefault((view, key), raw)
        if raw is None:
            return None
        return (
            msgspec.json.decode(raw) if as_type is None else msgspec.json.decode(raw, type=as_type)
        )

    def put(self, view: str, key: str, value: Any) -> None:
        """Write row ``key`` of ``view`` (committed with the checkpoint). Put again after
        changing a value you got: the session does not track mutation."""
        self._rows[(view, key)] = value

    def delete(self, view: str, key: str) -> None:
        """Remove row ``key`` of ``view``."""
        self._rows[(view, key)] = _DELETED

    def seal(self) -> BatchEffects:
        """Encode the buffered rows into the effects to commit."""
        views = self.effects.views
        for address, value in self._rows.items():
            views[address] = None if value is _DELETED else msgspec.json.encode(value)
        return self.effects


_MISSING: Final = object()
