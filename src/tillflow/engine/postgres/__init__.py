"""The PostgreSQL backend (psycopg 3): :class:`PostgresEventStore`.

Modules: :mod:`~tillflow.engine.postgres.schema` (tables, versions, lane count),
:mod:`~tillflow.engine.postgres.writer` (lane writers, processor batches),
:mod:`~tillflow.engine.postgres.reads` (every query, snapshots),
:mod:`~tillflow.engine.postgres.leases` (leases per group and lane, heartbeats, fences),
:mod:`~tillflow.engine.postgres.store` (the port: pool, group committers, lifecycle).
"""

from tillflow.engine.leasing import Fence, fair_share
from tillflow.engine.postgres.errors import (
    DatabaseUnavailable,
    LaneCountMismatch,
    LeaseLost,
    SchemaMissing,
)
from tillflow.engine.postgres.leases import LeaseRow, Leases
from tillflow.engine.postgres.schema import DEFAULT_LANES, SCHEMA_VERSION
from tillflow.engine.postgres.store import PostgresEventStore

__all__ = [
    "DEFAULT_LANES",
    "SCHEMA_VERSION",
    "DatabaseUnavailable",
    "Fence",
    "LaneCountMismatch",
    "LeaseLost",
    "LeaseRow",
    "Leases",
    "PostgresEventStore",
    "SchemaMissing",
    "fair_share",
]
