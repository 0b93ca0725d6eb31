"""The store contract on PostgreSQL (a private cluster, a fresh database per test), with
16 lanes and with one, plus what only a server with concurrent sessions can show."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from tests.contract.store_contract import EventStoreContract
from tillflow.engine import BatchEffects, CheckpointConflict, EventRegistry, EventStore
from tillflow.engine.postgres import PostgresEventStore


class TestPostgresStore(EventStoreContract):
    lanes = 16

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return PostgresEventStore(self.url, lanes=self.lanes, registry=registry)

    def test_racing_batches_from_one_checkpoint_commit_once(self) -> None:
        """Eight workers holding the same checkpoint (3) race to move it: exactly one
        commits; the others are refused naming where it is now, their rows unwritten."""
        store = self.make_store()
        try:
            for position in range(3):
                store.commit_batch("p", 0, position, position + 1, BatchEffects())
            start = threading.Barrier(8)

            def race(worker: int) -> str:
                start.wait()
                try:
                    store.commit_batch(
                        "p", 0, 3, 4, BatchEffects(views={("v", f"w{worker}"): b"1"})
                    )
                except CheckpointConflict as refused:
                    assert (refused.expected, refused.actual) == (3, 4)
                    return "refused"
                return "committed"

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(race, range(8)))
            assert sorted(outcomes) == ["committed"] + ["refused"] * 7
            assert store.checkpoint("p", 0) == 4
            assert len(list(store.view_rows("v"))) == 1
        finally:
            store.close()


class TestPostgresStoreOneLane(TestPostgresStore):
    lanes = 1
