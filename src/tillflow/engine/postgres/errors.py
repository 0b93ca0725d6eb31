"""Errors only the PostgreSQL backend raises, and the engine's lease errors it raises too
(:class:`LeaseLost`, :class:`ViewRowChanged`: any store whose lanes workers share may)."""

from __future__ import annotations

from tillflow.engine.errors import (
    LeaseLost,
    NotATillflowDatabase,
    StoreUnavailable,
    TillflowError,
    ViewRowChanged,
)

__all__ = [
    "DatabaseUnavailable",
    "LaneCountMismatch",
    "LeaseLost",
    "SchemaMissing",
    "ViewRowChanged",
]


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


class SchemaMissing(NotATillflowDatabase):
    """The database is empty and the store was opened not to create tillflow's schema
    (``create=False``: a command that only reads, or a worker); nothing was written."""

    def __init__(self, database: str) -> None:
        super().__init__(database, "it is empty (no tillflow schema yet)")
