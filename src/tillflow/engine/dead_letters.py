"""What an operator does with parked events (dead letters): list, show, retry, skip.

A dead letter is named ``<processor>:<id of its head event>`` (a dependant that holds the
same key behind its upstream has its own). A retry or a skip
is an event on ``dead-letters-<processor>`` (who, why, when: the audit trail), appended only
after checking that the dead letter is parked and has no request pending, and guarded by
that stream's version. The lane that parked it carries the request out in its next step:
a retry handles the head and then the held events in order, a skip drops the head and
handles the held ones; the first that fails becomes the key's head again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from tillflow.engine.errors import (
    DeadLetterBusy,
    DeadLetterResolved,
    InvalidEvent,
    UnknownDeadLetter,
)
from tillflow.engine.parking import (
    RETRY_REQUESTED,
    SKIPPED,
    DeadLetter,
    DeadLetterRequest,
    dead_letter_stream,
    parked_lanes,
)
from tillflow.engine.store import EventStore
from tillflow.engine.types import NewEvent, Receipt, RecordedEvent
from tillflow.engine.versions import live_name

Action = Literal["retry", "skip"]
MAX_TEXT = 500


@dataclass(frozen=True)
class ParkedKey:
    """A dead letter as an operator sees it: the parked key and what was asked of it."""

    processor: str
    letter: DeadLetter
    pending: Action | None
    """A retry or skip asked and not yet carried out."""
    requests: list[DeadLetterRequest]
    """Every retry and skip asked of this head, oldest first."""

    @property
    def id(self) -> str:
        """``<processor>:<head event id>``: what operators name it by."""
        return f"{self.processor}:{self.letter.event_id}"


def _requests(store: EventStore, processor: str) -> list[tuple[RecordedEvent, DeadLetterRequest]]:
    return [
        (event, event.decode(DeadLetterRequest))
        for event in store.read_stream(dead_letter_stream(processor))
    ]


def parked_keys(store: EventStore, processors: Iterable[str]) -> list[ParkedKey]:
    """Every dead letter of ``processors``, by processor, lane and position; of a rebuilt
    projection, those of its live version (under that version's name)."""
    found: list[ParkedKey] = []
    with store.snapshot():
        for declared in processors:
            processor = live_name(store, declared)
            lanes = parked_lanes(store, processor)
            if not lanes:
                continue
            requests = _requests(store, processor)
            for lane, parked in sorted(lanes.items()):
                for letter in sorted(parked.letters.values(), key=lambda each: each.position):
                    asked = [
                        (event, request)
                        for event, request in requests
                        if request.event_id == letter.event_id and request.lane == lane
                    ]
                    pending: Action | None = None
                    if asked and asked[-1][0].version > parked.seen:
                        pending = "skip" if asked[-1][0].type == SKIPPED else "retry"
                    found.append(
                        ParkedKey(processor, letter, pending, [request for _, request in asked])
                    )
    return found


def find_parked(store: EventStore, processor: str, event_id: str) -> ParkedKey:
    """The dead letter of ``processor`` whose head is the event ``event_id``. Raises
    :class:`DeadLetterResolved` if it was parked and is no more, :class:`UnknownDeadLetter`
    if it never was."""
    for parked in parked_keys(store, [processor]):
        if parked.letter.event_id == event_id:
            return parked
    if any(request.event_id == event_id for _, request in _requests(store, processor)):
        raise DeadLetterResolved(processor, event_id)
    raise UnknownDeadLetter(processor, event_id)


def locate(store: EventStore, processors: Sequence[str], dead_letter: str) -> ParkedKey:
    """The dead letter named ``dead_letter`` (:attr:`ParkedKey.id`) among ``processors``';
    raises as :func:`find_parked` does, and :class:`UnknownDeadLetter` for a name of
    another processor or none."""
    processor, _, event_id = dead_letter.rpartition(":")
    if processor not in processors:
        raise UnknownDeadLetter(processor or ", ".join(processors), dead_letter)
    return find_parked(store, processor, event_id)


def held_events(store: EventStore, letter: DeadLetter) -> list[RecordedEvent]:
    """The events held behind ``letter``'s head, in order."""
    held: list[RecordedEvent] = []
    for position in letter.held:
        held.extend(store.read(letter.lane, position - 1, position))
    return held


def _text(field: str, value: object, required: bool) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidEvent(field, value, "is required" if required else "must be text")
    if len(value) > MAX_TEXT:
        raise InvalidEvent(field, value[:40] + "…", f"longer than {MAX_TEXT} characters")
    return value.strip()


def request(
    store: EventStore,
    processor: str,
    event_id: str,
    action: Action,
    by: str,
    reason: str = "",
) -> Receipt:
    """Ask for a retry or a skip of ``processor``'s dead letter whose head is the event
    ``event_id``; return the receipt of the recorded
    request. ``by`` is required, and so is ``reason`` for a skip. Raises
    :class:`InvalidEvent` (the field named), :class:`UnknownDeadLetter`,
    :class:`DeadLetterResolved`, :class:`DeadLetterBusy` (a request pending, or the key only
    held behind an upstream's dead letter), or :class:`ConcurrencyConflict` when another
    request was recorded meanwhile; nothing is written when it raises."""
    if action not in ("retry", "skip"):
        raise InvalidEvent("action", action, "must be 'retry' or 'skip'")
    by = _text("by", by, required=True)
    reason = _text("reason", reason, required=action == "skip")
    stream = dead_letter_stream(processor)
    with store.snapshot():
        version = store.stream_version(stream)
        parked = find_parked(store, processor, event_id)
    if parked.pending is not None:
        raise DeadLetterBusy(processor, parked.id, f"a {parked.pending} is already pending")
    if parked.letter.behind is not None:
        raise DeadLetterBusy(
            processor, parked.id, f"held behind {parked.letter.behind!r}: act on that one"
        )
    data = DeadLetterRequest(
        processor, parked.letter.lane, parked.letter.key, event_id, by, reason, time.time()
    )
    event_type = SKIPPED if action == "skip" else RETRY_REQUESTED
    payload = msgspec.to_builtins(data)
    return store.append(stream, [NewEvent(event_type, payload)], expected_version=version)


class ParkedTally(msgspec.Struct, frozen=True):
    """One processor's parked keys on one lane: how many, the events they hold (heads
    included), and when the oldest was parked (Unix seconds)."""

    keys: int
    events: int
    oldest_at: float


def tally(parked: Iterable[ParkedKey]) -> dict[tuple[str, int], ParkedTally]:
    """``parked`` counted per (processor, lane)."""
    counted: dict[tuple[str, int], ParkedTally] = {}
    for each in parked:
        letter = each.letter
        place = (each.processor, letter.lane)
        before = counted.get(place, ParkedTally(0, 0, letter.parked_at))
        counted[place] = ParkedTally(
            before.keys + 1,
            before.events + 1 + len(letter.held),
            min(before.oldest_at, letter.parked_at),
        )
    return counted
