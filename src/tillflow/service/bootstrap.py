"""The composition root: the one place where stores are chosen and wired."""

from __future__ import annotations

from pathlib import Path

from tillflow.engine import Durability, EventRegistry, EventStore, MemoryEventStore
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.postgres.schema import describe
from tillflow.engine.sqlite import SqliteEventStore
from tillflow.service.access_tokens import TOKEN_EVENTS
from tillflow.shop.inventory.events import INVENTORY_EVENTS
from tillflow.shop.sale.events import SALE_EVENTS


def service_registry() -> EventRegistry:
    """Every event type the served shop records: Sale's, Inventory's and the access tokens'."""
    return EventRegistry({**SALE_EVENTS, **INVENTORY_EVENTS, **TOKEN_EVENTS})


class ConfigurationError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


def is_server_url(database: str) -> bool:
    """Whether ``database`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)
    rather than a file."""
    return database.startswith(("postgres://", "postgresql://"))


def describe_database(database: str) -> str:
    """``database`` as it may be shown (titles, log lines): a PostgreSQL URL without its
    password; anything else as given."""
    return describe(database) if is_server_url(database) else database


def open_store(
    database: str,
    durability: Durability = "full",
    registry: EventRegistry | None = None,
) -> EventStore:
    """Open the store named by ``database``: ``memory`` (or ``memory:N`` for N lanes), a
    PostgreSQL URL (``postgresql://user@host/db``: the database's lanes, 16 for a new one),
    or a path to an SQLite file (``sqlite:///path`` also accepted)."""
    if database == "memory" or database.startswith("memory:"):
        lanes_text = database.partition(":")[2] or "1"
        if not lanes_text.isdigit() or int(lanes_text) < 1:
            raise ConfigurationError(f"database {database!r}: lane count must be a number ≥ 1")
        return MemoryEventStore(lane_count=int(lanes_text), registry=registry)
    if is_server_url(database):
        return PostgresEventStore(database, registry=registry, durability=durability)
    path = database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else database
    if not path:
        raise ConfigurationError("database: empty path")
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigurationError(f"database {database!r}: directory {parent} does not exist")
    return SqliteEventStore(Path(path).expanduser(), durability=durability, registry=registry)
