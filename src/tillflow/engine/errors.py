"""Every error the engine raises: one base class, each error carrying its data."""

from __future__ import annotations

from collections.abc import Sequence


class TillflowError(Exception):
    """Base class of every error tillflow raises on purpose."""


def shown(value: object) -> str:
    """``repr(value)`` for an error message, never failing: an int past Python's 4,300-digit
    limit (or anything whose ``repr`` raises) is described instead."""
    try:
        return repr(value)
    except Exception:  # ValueError: the digit limit; or a failing __repr__
        if isinstance(value, int):
            return f"<int of about {int(abs(value).bit_length() * 0.30103) + 1} digits>"
        return f"<{type(value).__name__} that cannot be printed>"


class ConcurrencyConflict(TillflowError):
    """An append expected a stream version that is not the stream's current version."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r}: expected version {expected}, but it is at version {actual}"
        )


class EventIdReused(TillflowError):
    """An event id already recorded was appended again with different content."""

    def __init__(self, event_id: str, field: str) -> None:
        self.event_id = event_id
        self.field = field
        super().__init__(
            f"event id {event_id} is already recorded with a different {field}; "
            "an id may only be appended again with identical content"
        )


class InvalidEvent(TillflowError):
    """An event given to append is malformed (empty type, bad stream name, bad data...)."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid event {field}={shown(value)}: {reason}")


class UnknownEventType(TillflowError):
    """An event type that the registry in use does not know."""

    def __init__(self, event_type: str, known: Sequence[str] = ()) -> None:
        self.event_type = event_type
        self.known = tuple(known)
        hint = f" (known: {', '.join(sorted(self.known))})" if self.known else ""
        super().__init__(f"unknown event type {event_type!r}{hint}")


class UnknownProcessor(TillflowError):
    """A processor named (in ``after``, in a wait, on the command line) that is not declared."""

    def __init__(self, name: str, referenced_by: str | None = None) -> None:
        self.name = name
        self.referenced_by = referenced_by
        where = f" (named in after= of {referenced_by!r})" if referenced_by else ""
        super().__init__(f"unknown processor {name!r}{where}")


class RetiredProcessor(UnknownProcessor):
    """A processor named that an earlier version had, whose work another now does."""

    def __init__(self, name: str, successor: str) -> None:
        TillflowError.__init__(self, f"processor {name!r} is retired: {successor!r} does its work")
        self.name = name
        self.referenced_by = None
        self.successor = successor


class DuplicateProcessor(TillflowError):
    """Two processors were declared with the same name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"processor {name!r} is declared twice")


class DependencyCycle(TillflowError):
    """The ``after=`` declarations form a cycle; ``cycle`` lists it, first name repeated last."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("processors depend on each other in a cycle: " + " -> ".join(self.cycle))


class HandlerFailed(TillflowError):
    """A processor's handler raised; the processor stopped before the event, nothing of the
    failing event was committed and the checkpoint sits just before it."""

    def __init__(
        self, processor: str, lane: int, position: int, event_id: str, event_type: str
    ) -> None:
        self.processor = processor
        self.lane = lane
        self.position = position
        self.event_id = event_id
        self.event_type = event_type
        super().__init__(processor, lane, position, event_id, event_type)

    def __str__(self) -> str:
        """Names the handler's error, which ``raise ... from`` sets after ``__init__``."""
        return (
            f"processor {self.processor!r} failed on {self.event_type} {self.event_id} "
            f"(lane {self.lane}, position {self.position}): {self.__cause__!r}"
        )


class CheckpointConflict(TillflowError):
    """A processor tried to move a checkpoint from a position it no longer holds: another
    worker moved it. The batch was rolled back; nothing was written."""

    def __init__(self, processor: str, lane: int, expected: int, actual: int) -> None:
        self.processor = processor
        self.lane = lane
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checkpoint of {processor!r} on lane {lane} is at {actual}, expected {expected}: "
            "another worker holds this processor"
        )


class CheckpointPassed(CheckpointConflict):
    """A batch that may commit only while another processor's checkpoint is at most
    ``expected`` found it at ``actual``, past it (a rebuild's switch: the live version moved
    on after the two were compared). Nothing was written; compare again."""

    def __init__(self, processor: str, lane: int, expected: int, actual: int) -> None:
        super().__init__(processor, lane, expected, actual)
        self.args = (
            f"checkpoint of {processor!r} on lane {lane} is at {actual}, past {expected}: "
            "it moved on since it was compared",
        )


class LeaseLost(CheckpointConflict):
    """A batch was fenced out: its worker no longer holds the lease (processor group, lane)
    at the epoch it committed under (taken over, expired or resigned). The transaction was
    rolled back; nothing of the batch was written. Let the lane go. A kind of
    :class:`CheckpointConflict`, so a runtime handles it as one (cached state dropped)."""

    def __init__(self, processor: str, lane: int, owner: str, epoch: int) -> None:
        self.processor = processor
        self.lane = lane
        self.owner = owner
        self.epoch = epoch
        self.expected = self.actual = -1  # unknown: the checkpoint was never compared
        TillflowError.__init__(
            self,
            f"{owner!r} no longer holds the lease of {processor!r} on lane {lane} at epoch "
            f"{epoch}: the batch was rolled back",
        )


class ViewRowChanged(ConcurrencyConflict):
    """A batch read a view row that another worker's batch changed before it committed
    (workers share a group's lanes; rows such as totals span lanes). The batch was rolled
    back, nothing written; a runtime redoes it at once against the new row."""

    def __init__(self, processor: str, view: str, key: str) -> None:
        self.processor = processor
        self.view = view
        self.key = key
        self.stream = f"{view}/{key}"
        self.expected = self.actual = -1  # rows have no versions: compared by content
        TillflowError.__init__(
            self,
            f"view row {view!r}/{key!r} changed under a batch of {processor!r}: rolled back",
        )


class NotATillflowDatabase(TillflowError):
    """The store file exists but is not a tillflow database (or not SQLite at all)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is not a tillflow database: {reason}")


class SchemaTooNew(TillflowError):
    """The store was written by a newer tillflow whose schema this version cannot read."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path} has schema version {found}; this tillflow reads up to {supported}. "
            "Upgrade tillflow to open it"
        )


class StoreClosed(TillflowError):
    """The store was used after ``close()``."""

    def __init__(self) -> None:
        super().__init__("the event store is closed")


class StoreUnavailable(TillflowError):
    """The store's database could not be reached or failed the request (a server that went
    away, a lock held too long). What was not acknowledged may or may not have committed:
    retry with the same idempotency key."""


class DrainTimeout(TillflowError):
    """``drain()`` did not see every processor catch up within its timeout."""

    def __init__(self, timeout: float, behind: dict[str, int]) -> None:
        self.timeout = timeout
        self.behind = dict(behind)
        detail = ", ".join(f"{name} {count} behind" for name, count in sorted(behind.items()))
        super().__init__(f"processors did not catch up within {timeout:g}s: {detail}")


class ProcessorStopped(TillflowError):
    """A wait needed a processor that has failed or stopped; ``error`` says why."""

    def __init__(self, processor: str, error: BaseException | None) -> None:
        self.processor = processor
        self.error = error
        super().__init__(f"processor {processor!r} has stopped: {error!r}")


class UpcasterConflict(TillflowError):
    """Two upcasters were registered for the same event type and stored version."""

    def __init__(self, event_type: str, from_version: int) -> None:
        self.event_type = event_type
        self.from_version = from_version
        super().__init__(
            f"{event_type}: an upcaster from version {from_version} is already registered"
        )


class UpcasterGap(TillflowError):
    """An event type's upcasters do not chain from version 1 to its current version: the
    step from ``missing`` to ``missing + 1`` is not registered."""

    def __init__(self, event_type: str, missing: int, current: int) -> None:
        self.event_type = event_type
        self.missing = missing
        self.current = current
        super().__init__(
            f"{event_type}: no upcaster from version {missing} to {missing + 1} "
            f"(the chain must lead from version 1 to {current})"
        )


class NoUpcastPath(TillflowError):
    """A recorded event's schema version cannot be brought to its type's current version:
    it is newer than this release knows, or its upcaster failed (``reason``)."""

    def __init__(self, event_type: str, stored: int, current: int, reason: str) -> None:
        self.event_type = event_type
        self.stored = stored
        self.current = current
        self.reason = reason
        super().__init__(
            f"{event_type} recorded at schema version {stored} cannot be read as version "
            f"{current}: {reason}"
        )


class UnknownDeadLetter(TillflowError):
    """A retry or skip named a dead letter that ``processor`` never parked."""

    def __init__(self, processor: str, dead_letter: str) -> None:
        self.processor = processor
        self.dead_letter = dead_letter
        super().__init__(f"processor {processor!r} has no dead letter {dead_letter!r}")


class DeadLetterResolved(TillflowError):
    """A retry or skip named a dead letter that is no longer parked (retried or skipped)."""

    def __init__(self, processor: str, dead_letter: str) -> None:
        self.processor = processor
        self.dead_letter = dead_letter
        super().__init__(f"dead letter {dead_letter!r} of {processor!r} is already resolved")


class DeadLetterBusy(TillflowError):
    """A retry or skip that cannot be asked now: one is already pending, or the key is
    only held behind an upstream processor's dead letter (act on that one)."""

    def __init__(self, processor: str, dead_letter: str, reason: str) -> None:
        self.processor = processor
        self.dead_letter = dead_letter
        self.reason = reason
        super().__init__(f"dead letter {dead_letter!r} of {processor!r}: {reason}")
