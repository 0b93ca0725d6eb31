from __future__ import annotations

from tests.contract.store_contract import EventStoreContract
from tillflow.engine import EventRegistry, EventStore, MemoryEventStore


class TestMemoryStoreOneLane(EventStoreContract):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(registry=registry)


class TestMemoryStoreFourLanes(EventStoreContract):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(lane_count=4, registry=registry)
