"""Errors only the PostgreSQL backend raises (the others are the engine's own)."""

from __future__ import annotations

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    StoreUnavailable,
    TillflowError,
)


class DatabaseUnavailable(StoreUnavailable):
    """The PostgreSQL server could not be reached or failed the request (connection refused,
    bad URL, lock timeout, server shutdown). Nothing of the failed request was committed
    unless it said so: a write either committed whole or not at all."""

    def __init__(self, database: str, reason: str) -> None:
        self.database = database
        self.reason = reason
        super().__init__(f"{database}: {reason}")


class LaneCountMismatch(TillflowError):
    """The store was opened with a lane count other than the one the database was created
    with; lanes are fixed for the life of a database (a stream's lane is a hash of its id)."""

    def __init__(self, database: str, found: int, requested: int) -> None:
        self.database = database
        self.found = found
        self.requested = requested
        super().__init__(
            f"{database} was created with {found} lanes, not {requested}: open it with "
            f"lanes={found} (or leave the lane count out)"
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
