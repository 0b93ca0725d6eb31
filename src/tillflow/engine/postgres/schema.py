"""The PostgreSQL schema: created and versioned by the store, in the connection's current
schema (``search_path``), one transaction under a transaction-level advisory lock so that
processes opening a new database together create it once.

``tillflow_schema`` is the mark of a tillflow database: one row with the schema version
and the lane count, both fixed when the database is created. ``lanes`` holds one head row
per lane: appenders lock it and move it in the appending transaction, which is what makes
positions dense per lane in commit order. ``leases`` and ``workers`` (version 2) hold
which worker owns each (processor group, lane) and which workers are alive; expiries are
on the database clock. ``fenced_commits`` (version 3) counts, per (processor group, lane),
the batches the fence refused; ``workers.groups`` (version 4), the processor groups each
worker runs. Version 5 changes no table: events are read at their types' current schema
versions from then on (upcast), and the releases before, which ignored the version, must
not open a database that may hold newer ones. An older database is migrated when opened.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tillflow.engine.errors import NotATillflowDatabase, SchemaTooNew
from tillflow.engine.postgres.errors import LaneCountMismatch, SchemaMissing

SCHEMA_VERSION: Final = 6
DEFAULT_LANES: Final = 16
MOST_LANES: Final = 1024
_CREATING_LOCK: Final = 0x54494C4C  # "TILL": held while one process creates the schema

_DDL: Final = (
    """CREATE TABLE tillflow_schema (
        singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version    integer NOT NULL,
        lane_count integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE lanes (
        lane integer PRIMARY KEY,
        head bigint  NOT NULL
    )""",
    """CREATE TABLE events (
        lane           integer NOT NULL,
        position       bigint  NOT NULL,
        id             bytea   NOT NULL UNIQUE,
        stream         text COLLATE "C" NOT NULL,
        version        bigint  NOT NULL,
        type           text    NOT NULL,
        schema_version integer NOT NULL,
        data           bytea   NOT NULL,
        recorded_at    double precision NOT NULL,
        causation_id   bytea,
        correlation_id bytea,
        PRIMARY KEY (lane, position),
        UNIQUE (stream, version)
    )""",
    "CREATE INDEX events_by_causation ON events (causation_id) WHERE causation_id IS NOT NULL",
    """CREATE TABLE checkpoints (
        processor  text COLLATE "C" NOT NULL,
        lane       integer NOT NULL,
        position   bigint  NOT NULL,
        updated_at double precision NOT NULL,
        PRIMARY KEY (processor, lane)
    )""",
    """CREATE TABLE views (
        view  text COLLATE "C" NOT NULL,
        key   text COLLATE "C" NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (view, key)
    ) WITH (fillfactor = 70)""",
)
_VIEWS_FILL: Final = "ALTER TABLE views SET (fillfactor = 70)"
"""Room left on each page of the view rows (version 6): processors rewrite their rows all
the time, and a new version of a row that fits on its page updates no index (a HOT
update): ~8 % less server CPU for the shop on PostgreSQL."""
_LEASE_DDL: Final = (
    """CREATE TABLE leases (
        processor  text COLLATE "C" NOT NULL,
        lane       integer NOT NULL,
        owner      text,
        epoch      bigint NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (processor, lane)
    )""",
    "CREATE INDEX leases_by_owner ON leases (owner) WHERE owner IS NOT NULL",
    """CREATE TABLE workers (
        worker     text COLLATE "C" PRIMARY KEY,
        expires_at timestamptz NOT NULL
    )""",
)
"""Added in version 2: leases per (processor group, lane) and worker heartbeats."""
_FENCED_DDL: Final = (
    """CREATE TABLE fenced_commits (
        processor  text COLLATE "C" NOT NULL,
        lane       integer NOT NULL,
        refused    bigint  NOT NULL,
        last_at    timestamptz NOT NULL,
        PRIMARY KEY (processor, lane)
    )""",
)
"""Added in version 3: batches refused by the fence (their worker had lost the lease),
counted in a transaction of their own after the refused one rolled back."""
_GROUPS_DDL: Final = (
    """ALTER TABLE workers
        ADD COLUMN IF NOT EXISTS groups text[] COLLATE "C" NOT NULL DEFAULT '{}'""",
)
"""Added in version 4: the processor groups each worker runs (a group's fair share counts
the live workers running it)."""


def describe(url: str) -> str:
    """The database named by ``url`` for messages: user, host, port and name, never the
    password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "the PostgreSQL database (unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def hide_password(text: str, url: str) -> str:
    """``text`` (a driver's message about ``url``) with the URL's password, as written or
    percent-decoded, replaced by ``***``: parse errors quote the part they choke on."""
    rest = url.partition("://")[2]
    authority, _, query = rest.partition("?")
    secrets = [authority.rpartition("@")[0].partition(":")[2]] if "@" in authority else []
    secrets += [
        value
        for name, _, value in (p.partition("=") for p in query.split("&"))
        if name == "password"
    ]
    for secret in sorted({*secrets, *(unquote(s) for s in secrets)} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def initialise(
    conn: psycopg.Connection[Any], database: str, lanes: int | None, create: bool = True
) -> int:
    """Create the schema in an empty database, or check an existing one; the lane count.

    ``lanes``: the lane count wanted (``None``: the database's, or :data:`DEFAULT_LANES`
    when creating). ``create=False``: an empty database is refused too. Raises
    :class:`NotATillflowDatabase` (tables of something else; :class:`SchemaMissing`, empty
    and not to be created), :class:`SchemaTooNew`, :class:`LaneCountMismatch`; none of
    them writes anything. An older schema is migrated (in the same transaction, so all or
    nothing).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATING_LOCK,))
        marked = _fetch(conn, "SELECT to_regclass('tillflow_schema') IS NOT NULL")
        if not marked:
            tables = _fetch(
                conn,
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')",
            )
            if tables:
                raise NotATillflowDatabase(
                    database, f"its schema holds {tables} tables or views, none of them tillflow's"
                )
            if not create:
                raise SchemaMissing(database)
            count = DEFAULT_LANES if lanes is None else lanes
            for statement in (*_DDL, *_LEASE_DDL, *_FENCED_DDL, *_GROUPS_DDL):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO tillflow_schema (version, lane_count) VALUES (%s, %s)",
                (SCHEMA_VERSION, count),
            )
            conn.execute(
                "INSERT INTO lanes SELECT g, 0 FROM generate_series(0, %s - 1) g", (count,)
            )
            return count
        row = conn.execute("SELECT version, lane_count FROM tillflow_schema").fetchone()
        if row is None:
            raise NotATillflowDatabase(database, "its tillflow_schema table is empty")
        version, found = int(row[0]), int(row[1])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(database, version, SCHEMA_VERSION)
        if lanes is not None and lanes != found:
            raise LaneCountMismatch(database, found, lanes)
        added = (
            *(_LEASE_DDL if version < 2 else ()),
            *(_FENCED_DDL if version < 3 else ()),
            *(_GROUPS_DDL if version < 4 else ()),
            *((_VIEWS_FILL,) if version < 6 else ()),
        )
        for statement in added:
            conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute("UPDATE tillflow_schema SET version = %s", (SCHEMA_VERSION,))
        return found


def _fetch(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]
