"""Upcasting, as every store backend keeps it: whatever read an event comes back through,
it is at its type's current schema version (:mod:`tillflow.engine.upcasting`)."""

from __future__ import annotations

from typing import Any

import pytest

from tillflow.engine import (
    BatchEffects,
    Emitted,
    EventRegistry,
    EventStore,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    Upcasters,
)
from tillflow.engine.ids import derived_id_at, derived_id_base
from tillflow.engine.lanes import lane_of

UPCASTERS = Upcasters()


@UPCASTERS.register("Weighed", 1)
def _grams(data: dict[str, Any]) -> dict[str, Any]:
    """v1 held kilograms as ``kg``; v2 grams as ``grams``."""
    return {"grams": data.pop("kg") * 1000, **data}


@UPCASTERS.register("Weighed", 2)
def _unit(data: dict[str, Any]) -> dict[str, Any]:
    """v3 names the scale (v2 had one)."""
    data["scale"] = "main"
    return data


REGISTRY = EventRegistry(["Weighed", "Noted"], UPCASTERS)
STREAM = "scale-1"
CURRENT = {"grams": 2000, "scale": "main"}


def _weighed(version: int) -> NewEvent:
    data = {1: {"kg": 2}, 2: {"grams": 2000}, 3: CURRENT}[version]
    return NewEvent("Weighed", data, schema_version=version)


class UpcastingContract:
    """Mixed into a backend's test class, which provides :meth:`make_store`."""

    def make_store(self, registry: EventRegistry | None = None) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def upcasting_store(self) -> Any:
        store = self.make_store(REGISTRY)
        yield store
        store.close()

    def _assert_current(self, events: list[RecordedEvent]) -> None:
        weighed = [event for event in events if event.type == "Weighed"]
        assert weighed and all(event.schema_version == 3 for event in weighed)
        assert all(event.payload() == CURRENT for event in weighed)

    def test_every_read_gives_older_versions_at_the_current_one(
        self, upcasting_store: EventStore
    ) -> None:
        store = upcasting_store
        store.append(STREAM, [NewEvent("Noted", {}), _weighed(1), _weighed(2), _weighed(3)])
        lane = lane_of(STREAM, store.lane_count)
        head = store.head(lane)
        # first what a backend may hold of its own writes, then what it reads anew
        self._assert_current(store.read(lane, 0, head, types={"Weighed"}))
        self._assert_current(store.read(lane, 0, head))
        self._assert_current(store.read(lane, 0))
        self._assert_current(store.read_stream(STREAM))
        [oldest] = store.read_stream(STREAM, 1, 2)
        self._assert_current([event for event in [store.get_event(oldest.id)] if event])
        self._assert_current([event for event in [store.last_event(STREAM)] if event])

    def test_a_batch_that_emits_an_older_version_is_read_at_the_current_one(
        self, upcasting_store: EventStore
    ) -> None:
        store = upcasting_store
        store.append(STREAM, [NewEvent("Noted", {})])
        lane = lane_of(STREAM, store.lane_count)
        [source] = store.read_stream(STREAM)
        base = derived_id_base("p", source.id)
        caused = [NewEvent("Weighed", {"kg": 2}, id=derived_id_at(base, 0), causation_id=source.id)]
        store.commit_batch("p", lane, 0, 1, BatchEffects(emitted=[Emitted("echo", caused)]))
        echo_lane = lane_of("echo", store.lane_count)
        self._assert_current(store.emitted_by("p", source))
        self._assert_current(store.emitted_by_many("p", [source])[source.id])
        self._assert_current(store.read(echo_lane, 0, store.head(echo_lane)))
        self._assert_current(store.find_by_causation(source.id))
        self._assert_current([event for event in [store.last_event("echo")] if event])

    def test_an_event_newer_than_its_types_current_version_is_refused(
        self, upcasting_store: EventStore
    ) -> None:
        store = upcasting_store
        with pytest.raises(InvalidEvent) as refused:
            store.append(STREAM, [_weighed(3), NewEvent("Weighed", {}, schema_version=4)])
        assert (refused.value.field, refused.value.value) == ("schema_version", 4)
        assert "Weighed is at version 3" in str(refused.value)
        assert store.read_stream(STREAM) == []
