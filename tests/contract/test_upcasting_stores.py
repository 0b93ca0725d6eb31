"""The upcasting contract on every backend (memory, SQLite with and without its ring of
recent events, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.upcasting_contract import UpcastingContract
from tillflow.engine import EventRegistry, EventStore, MemoryEventStore, SqliteEventStore
from tillflow.engine.postgres import PostgresEventStore


class TestMemoryStoreUpcasting(UpcastingContract):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(lane_count=3, registry=registry, hot=2, window=3)


class TestSqliteStoreUpcasting(UpcastingContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return SqliteEventStore(self.directory / "events.db", registry=registry)


class TestSqliteStoreUpcastingFromTheFile(TestSqliteStoreUpcasting):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return SqliteEventStore(self.directory / "events.db", registry=registry, recent_events=1)


class TestPostgresStoreUpcasting(UpcastingContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return PostgresEventStore(self.url, lanes=4, registry=registry)
