from __future__ import annotations

from tests.contract.store_contract import EventStoreContract
from tillflow.engine import EventRegistry, EventStore, MemoryEventStore


class TestMemoryStoreOneLane(EventStoreContract):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(registry=registry)


class TestMemoryStoreFourLanes(EventStoreContract):
    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(lane_count=4, registry=registry)


class TestMemoryStorePacked(EventStoreContract):
    """Every event but the newest two packed, three to a window: the packed paths of
    :class:`tillflow.engine.lane_log.LaneLog` under the whole contract."""

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        return MemoryEventStore(lane_count=3, registry=registry, hot=2, window=3)
