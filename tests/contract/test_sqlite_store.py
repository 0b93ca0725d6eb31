from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.store_contract import EventStoreContract
from tillflow.engine import EventRegistry, EventStore, SqliteEventStore


class TestSqliteStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return SqliteEventStore(self.directory / "events.db", registry=registry)


class TestSqliteStoreWithoutRecentEvents(TestSqliteStore):
    """Every read from the file: the ring of recent events must change no answer."""

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return SqliteEventStore(self.directory / "events.db", registry=registry, recent_events=1)
