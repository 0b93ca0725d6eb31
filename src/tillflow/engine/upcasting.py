"""Upcasting: events recorded in an older schema version read as the current one.

Every event type has a current schema version: 1, until upcasters are registered for it.
An upcaster takes the decoded data (a dict) of version ``n`` of one type to version
``n + 1``, so the steps of a type chain from version 1 to its current version::

    recorded (CheckedOut, v1) ──1→2──► (v2) ──2→3──► … ──► current ──► every reader

The log is never rewritten. A store with a registry writes each event at the version it is
given (never newer than the current one) and hands every event it reads through
:meth:`Upcasting.current`: an event already current costs a dict lookup of its type and
one integer comparison; only an older one is decoded, upcast step by step and encoded once.
So live processing, rebuilds, the simulator and every query see the same current events.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any

import msgspec

from tillflow.engine.errors import (
    InvalidEvent,
    NoUpcastPath,
    UnknownEventType,
    UpcasterConflict,
    UpcasterGap,
)
from tillflow.engine.types import RecordedEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""``upcaster(data)``: the data of one version as the next version's (a new dict, or the
given one changed). A pure function of the data: it runs on every read of an old event,
in every process, and must give the same answer each time."""


class Upcasters:
    """The upcasters of a set of event types, by (type, version they read)."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Upcaster]] = {}

    def add(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register ``upcaster`` from ``from_version`` to ``from_version + 1``. Raises
        :class:`UpcasterConflict` if that step is registered already and
        :class:`InvalidEvent` for a version that is not a whole number ≥ 1."""
        if type(from_version) is not int or from_version < 1:
            raise InvalidEvent("from_version", from_version, "must be a whole number ≥ 1")
        steps = self._steps.setdefault(event_type, {})
        if from_version in steps:
            raise UpcasterConflict(event_type, from_version)
        steps[from_version] = upcaster

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add`: ``@upcasters.register("CheckedOut", 1)``."""

        def add(upcaster: Upcaster) -> Upcaster:
            self.add(event_type, from_version, upcaster)
            return upcaster

        return add

    def __iter__(self) -> Iterator[tuple[str, dict[int, Upcaster]]]:
        return iter(self._steps.items())

    def __bool__(self) -> bool:
        return bool(self._steps)

    def merged(self, other: Upcasters) -> Upcasters:
        """These upcasters and ``other``'s (:class:`UpcasterConflict` on a shared step)."""
        both = Upcasters()
        for upcasters in (self, other):
            for event_type, steps in upcasters:
                for version, upcaster in steps.items():
                    both.add(event_type, version, upcaster)
        return both


class Upcasting:
    """The checked chains of a registry: built once at start-up, used by stores on read.

    Raises :class:`UnknownEventType` for an upcaster of a type not in ``known`` and
    :class:`UpcasterGap` for a chain that does not lead from version 1 to the type's
    current version without a missing step."""

    def __init__(self, upcasters: Upcasters, known: Collection[str]) -> None:
        self._chains: dict[str, list[Upcaster]] = {}
        self.versions: dict[str, int] = dict.fromkeys(known, 1)
        """Every known type's current version."""
        for event_type, steps in upcasters:
            if event_type not in self.versions:
                raise UnknownEventType(event_type, sorted(known))
            current = max(steps) + 1
            for version in range(1, current):
                if version not in steps:
                    raise UpcasterGap(event_type, version, current)
            self._chains[event_type] = [steps[version] for version in range(1, current)]
            self.versions[event_type] = current

    def current(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """``events`` with every one at its type's current version: the same list when all
        are (or are of types not known), else a new one. Raises :class:`NoUpcastPath`."""
        versions = self.versions
        for index, event in enumerate(events):
            if versions.get(event.type, event.schema_version) != event.schema_version:
                return events[:index] + [self.upcast(event) for event in events[index:]]
        return events

    def upcast(self, event: RecordedEvent) -> RecordedEvent:
        """``event`` at its type's current version (itself if it is, or of a type not
        known). Raises :class:`NoUpcastPath` for a version newer than the current one or
        an upcaster that fails."""
        stored = event.schema_version
        current = self.versions.get(event.type, stored)
        if stored == current:
            return event
        if stored > current:
            raise NoUpcastPath(event.type, stored, current, "newer than this release knows")
        data = msgspec.json.decode(event.data)
        version = stored
        try:
            for step in self._chains[event.type][stored - 1 :]:
                data = step(data)
                if not isinstance(data, dict):
                    raise TypeError(f"it gave a {type(data).__name__}, not a dict")
                version += 1
            encoded = msgspec.json.encode(data)
        except Exception as error:
            reason = f"the upcaster from version {version} failed: {error}"
            raise NoUpcastPath(event.type, stored, current, reason) from error
        return msgspec.structs.replace(event, data=encoded, schema_version=current)


def current_events(upcasting: Upcasting | None, events: list[RecordedEvent]) -> list[RecordedEvent]:
    """What a store returns for ``events`` read: :meth:`Upcasting.current` (nothing to do
    when its registry has no upcasters, ``upcasting is None``)."""
    return events if upcasting is None else upcasting.current(events)


def current_event(upcasting: Upcasting | None, event: RecordedEvent | None) -> RecordedEvent | None:
    """:func:`current_events` of one event (``None`` stays ``None``)."""
    return event if upcasting is None or event is None else upcasting.upcast(event)


def current_sets(
    upcasting: Upcasting | None, found: dict[bytes, list[RecordedEvent]]
) -> dict[bytes, list[RecordedEvent]]:
    """:func:`current_events` of each set of ``found`` (what ``emitted_by_many`` returns)."""
    if upcasting is not None:
        for key, events in found.items():
            found[key] = upcasting.current(events)
    return found
