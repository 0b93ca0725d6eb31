"""The store contract on PostgreSQL (a private cluster, a fresh database per test), with
16 lanes and with one."""

from __future__ import annotations

import pytest

from tests.contract.store_contract import EventStoreContract
from tillflow.engine import EventRegistry, EventStore
from tillflow.engine.postgres import PostgresEventStore


class TestPostgresStore(EventStoreContract):
    lanes = 16

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return PostgresEventStore(self.url, lanes=self.lanes, registry=registry)


class TestPostgresStoreOneLane(TestPostgresStore):
    lanes = 1
