"""The composition root: the one place where stores are chosen and wired."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from tillflow.engine import Durability, EventRegistry, EventStore, MemoryEventStore
from tillflow.engine.parking import DEAD_LETTER_EVENTS
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.postgres.schema import MOST_LANES, describe
from tillflow.engine.sqlite import SqliteEventStore
from tillflow.service.access_tokens import TOKEN_EVENTS
from tillflow.shop.inventory.events import INVENTORY_EVENTS
from tillflow.shop.sale.events import SALE_EVENTS
from tillflow.shop.sale.upcasters import SALE_UPCASTERS


def service_registry() -> EventRegistry:
    """Every event type the served shop records: Sale's, Inventory's, the access tokens'
    and the dead letters' requests."""
    return EventRegistry(
        {**SALE_EVENTS, **INVENTORY_EVENTS, **TOKEN_EVENTS, **DEAD_LETTER_EVENTS}, SALE_UPCASTERS
    )


class ConfigurationError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


def is_server_url(database: str) -> bool:
    """Whether ``database`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)
    rather than a file."""
    return database.startswith(("postgres://", "postgresql://"))


POOL_TIMEOUT: Final = 2.0
"""Seconds a request waits for a pooled PostgreSQL connection before it is refused as
unavailable (503): with the server away, callers hear so soon and retry."""
BUSY_TIMEOUT: Final = 5.0
"""Seconds a write waits for an SQLite file's write lock held by another process before it
is refused as unavailable (503): a till hears so within seconds and retries."""
LANES_PARAMETER: Final = "lanes"
"""tillflow's own query parameter of a PostgreSQL URL: the lane count to create the
database with (or to insist on); taken out before the URL reaches the driver."""
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def split_lanes(url: str) -> tuple[str, int | None]:
    """A PostgreSQL URL without its ``lanes=N`` query parameter, and N (``None`` if absent).
    Raises :class:`ConfigurationError` for a count that is not a whole number from 1 to
    the most lanes a database can have, or given twice."""
    base, mark, query = url.partition("?")
    kept: list[str] = []
    counts: list[str] = []
    for parameter in query.split("&") if mark else []:
        name, _, value = parameter.partition("=")
        if name == LANES_PARAMETER:
            counts.append(value)
        else:
            kept.append(parameter)
    if len(counts) > 1:
        raise ConfigurationError(f"database URL: {LANES_PARAMETER} is given {len(counts)} times")
    lanes = None
    if counts:
        text = counts[0]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MOST_LANES):
            raise ConfigurationError(
                f"database URL: {LANES_PARAMETER}={text!r}: the lane count must be a whole "
                f"number from 1 to {MOST_LANES}"
            )
        lanes = int(text)
    return base + ("?" + "&".join(kept) if kept else ""), lanes


def describe_database(database: str) -> str:
    """``database`` as it may be shown (titles, log lines): a PostgreSQL URL without its
    password; anything else as given, but for an unknown URL scheme only the scheme."""
    if is_server_url(database):
        try:
            return describe(split_lanes(database)[0])
        except ConfigurationError:
            return describe(database.partition("?")[0])
    unknown = _SCHEME.match(database)
    if unknown is not None and not database.startswith("sqlite:///"):
        return f"{unknown.group(1)}:/…"
    return database


def _check_kind(database: str) -> None:
    """Refuse a URL of a scheme tillflow does not serve (never echoing the rest of it, which
    may hold a password): ``mysql://…``, ``postgresql:/host`` with one slash."""
    unknown = _SCHEME.match(database)
    if (
        unknown is not None
        and not is_server_url(database)
        and not database.startswith("sqlite:///")
    ):
        raise ConfigurationError(
            f"database {unknown.group(1)}:/…: not a URL tillflow can open; give a "
            "postgresql://user@host:port/name URL, an SQLite file path or memory"
        )


def open_store(
    database: str,
    durability: Durability = "full",
    registry: EventRegistry | None = None,
    *,
    create: bool = True,
    busy_timeout: float = BUSY_TIMEOUT,
) -> EventStore:
    """Open the store named by ``database``: ``memory`` (or ``memory:N`` for N lanes), a
    PostgreSQL URL (``postgresql://user@host/db``: the database's lanes, 16 for a new one;
    ``?lanes=N`` creates it with N, or insists on N), or a path to an SQLite file
    (``sqlite:///path`` also accepted). ``create=False``: the store must exist already (an
    SQLite file, a PostgreSQL database holding tillflow's schema), else an error and
    nothing is written. ``busy_timeout``: see :data:`BUSY_TIMEOUT` (SQLite only).

    Raises :class:`ConfigurationError` for a name it cannot use, and the store's own errors
    (``NotATillflowDatabase``, ``SchemaTooNew``, ``DatabaseUnavailable``,
    ``LaneCountMismatch``, ...); none of them writes anything."""
    if database == "memory" or database.startswith("memory:"):
        lanes_text = database.partition(":")[2] or "1"
        if not lanes_text.isdigit() or int(lanes_text) < 1:
            raise ConfigurationError(f"database {database!r}: lane count must be a number ≥ 1")
        return MemoryEventStore(lane_count=int(lanes_text), registry=registry)
    _check_kind(database)
    if is_server_url(database):
        url, lanes = split_lanes(database)
        return PostgresEventStore(
            url,
            lanes=lanes,
            registry=registry,
            durability=durability,
            create=create,
            pool_timeout=POOL_TIMEOUT,
        )
    path = database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else database
    if not path:
        raise ConfigurationError("database: empty path")
    if not create and not Path(path).expanduser().exists():
        raise ConfigurationError(f"database {database!r} does not exist")
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigurationError(f"database {database!r}: directory {parent} does not exist")
    return SqliteEventStore(
        Path(path).expanduser(), durability=durability, registry=registry, busy_timeout=busy_timeout
    )
