"""The lease tables as the status routes and ``/metrics`` read them: on PostgreSQL, what
every worker holds and did, wherever it runs (workers have no HTTP of their own, so the
figures come from the database); on the other stores, nothing (one process runs every
lane)."""

from __future__ import annotations

import psycopg

from tillflow.engine import EventStore
from tillflow.engine.postgres import DatabaseUnavailable, PostgresEventStore
from tillflow.engine.postgres.leases import LeaseOverview
from tillflow.engine.postgres.reads import reason


def lease_overview(store: EventStore) -> LeaseOverview | None:
    """The leases, fenced counts and live workers of ``store`` now; ``None`` on a store
    that does not lease lanes. Raises :class:`DatabaseUnavailable` (a 503) when the
    database cannot answer."""
    if not isinstance(store, PostgresEventStore):
        return None
    try:
        return store.leases.overview()
    except psycopg.Error as error:
        raise DatabaseUnavailable(store.database, reason(error)) from error
