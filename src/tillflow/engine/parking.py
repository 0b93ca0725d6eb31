"""Parked events (dead letters): what is kept of a failure, and where.

A processor that declares :class:`~tillflow.engine.failure.Parking` keeps, per lane, one view
row ``parked:<processor>`` / ``<lane>``: per key, the parked event (the *head*: its error,
traceback and attempts) and the positions held behind it, in order. The row is a view row,
so it is committed in the same transaction as the checkpoint that moves past the event:
every backend keeps it durable, and a checkpoint never passes a failure that is not parked.

A dependant of a parking processor holds that processor's parked keys too (``behind``
names the upstream; no error of its own) and lets them go by itself once the upstream has.

Operators act through requests appended to the stream ``dead-letters-<processor>``
(:mod:`tillflow.engine.dead_letters`): the audit trail. The lane that parked the event
applies them in its own commits and records how far it has read that stream (``seen``).
"""

from __future__ import annotations

import traceback

import msgspec

from tillflow.engine.ids import format_id
from tillflow.engine.store import EventStore
from tillflow.engine.types import RecordedEvent

PARKED_VIEW = "parked:"
DEAD_LETTER_STREAM = "dead-letters-"
RETRY_REQUESTED = "DeadLetterRetryRequested"
SKIPPED = "DeadLetterSkipped"


def parked_view(processor: str) -> str:
    """The view that holds ``processor``'s parked events."""
    return PARKED_VIEW + processor


def lane_row(lane: int) -> str:
    """The key of a lane's row in :func:`parked_view` (in lane order)."""
    return f"{lane:05d}"


def dead_letter_stream(processor: str) -> str:
    """The stream of operators' requests about ``processor``'s dead letters."""
    return DEAD_LETTER_STREAM + processor


def described(error: BaseException) -> tuple[str, str]:
    """An error as a dead letter keeps it: one line, and its traceback."""
    return f"{type(error).__name__}: {error}", "".join(traceback.format_exception(error))


class DeadLetter(msgspec.Struct):
    """A parked key: its head event and the positions held behind it, in order.

    ``error`` and ``traceback`` are empty when the key is only held ``behind`` an upstream
    processor that parked it. ``attempts``: how often the head has failed."""

    key: str
    lane: int
    position: int
    event_id: str
    event_type: str
    stream: str
    parked_at: float
    attempts: int = 0
    error: str = ""
    traceback: str = ""
    held: list[int] = msgspec.field(default_factory=list)
    behind: str | None = None

    @classmethod
    def at(
        cls,
        key: str,
        event: RecordedEvent,
        parked_at: float,
        *,
        attempts: int = 0,
        error: BaseException | None = None,
        held: list[int] | None = None,
        behind: str | None = None,
    ) -> DeadLetter:
        """``event`` as ``key``'s head: failed with ``error``, or held ``behind`` an
        upstream processor."""
        summary, trace = ("", "") if error is None else described(error)
        return cls(
            key,
            event.lane,
            event.position,
            format_id(event.id),
            event.type,
            event.stream,
            parked_at,
            attempts,
            summary,
            trace,
            [] if held is None else held,
            behind,
        )

    def queue(self) -> list[int]:
        """The head's position, then the held ones."""
        return [self.position, *self.held]


class ParkedLane(msgspec.Struct):
    """One lane's parked keys, and the version of the requests stream applied so far."""

    letters: dict[str, DeadLetter] = msgspec.field(default_factory=dict)
    seen: int = 0

    def copy(self) -> ParkedLane:
        """A copy that can change without changing this one."""
        return ParkedLane(
            {
                key: msgspec.structs.replace(letter, held=list(letter.held))
                for key, letter in self.letters.items()
            },
            self.seen,
        )


class DeadLetterRequest(msgspec.Struct, frozen=True):
    """An operator's retry or skip of a dead letter, as recorded (the audit trail)."""

    processor: str
    lane: int
    key: str
    event_id: str
    by: str
    reason: str
    at: float


DEAD_LETTER_EVENTS: dict[str, type] = {
    RETRY_REQUESTED: DeadLetterRequest,
    SKIPPED: DeadLetterRequest,
}
"""The request event types, for a store's registry."""


def read_parked(store: EventStore, processor: str, lane: int) -> ParkedLane:
    """``processor``'s committed parked keys on ``lane`` (none: an empty lane)."""
    raw = store.read_view(parked_view(processor), lane_row(lane))
    return ParkedLane() if raw is None else msgspec.json.decode(raw, type=ParkedLane)


def parked_lanes(store: EventStore, processor: str) -> dict[int, ParkedLane]:
    """Every lane of ``processor`` that has parked keys, by lane."""
    lanes: dict[int, ParkedLane] = {}
    for key, raw in store.view_rows(parked_view(processor)):
        parked = msgspec.json.decode(raw, type=ParkedLane)
        if parked.letters:
            lanes[int(key)] = parked
    return lanes
