"""A rebuild of a projection that parks: the new version parks a failing event and holds
its key's later ones, as the live one would, and switches; one that does not park stops
at the failure with nothing switched. On the memory store, with a projection of its own."""

from __future__ import annotations

import msgspec
import pytest

from tillflow.engine import (
    HandlerFailed,
    MemoryEventStore,
    NewEvent,
    Parking,
    Processor,
    RecordedEvent,
    Session,
)
from tillflow.engine.dead_letters import parked_keys
from tillflow.engine.rebuild import Rebuild
from tillflow.engine.versions import live_version, read_claim, version_of, versioned

VIEW = "counts"


class Counter:
    """Counts events per stream into ``counts`` (its version's); fails on ``bad`` ones."""

    def version_views(self, version: int) -> list[str]:
        return [versioned(VIEW, version)]

    def comparable(self, view: str, row: bytes) -> object:
        return msgspec.json.decode(row)

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        if event.payload().get("bad"):
            raise ValueError("a bad event")
        view = versioned(VIEW, version_of(session.processor))
        session.put(view, event.stream, (session.get(view, event.stream) or 0) + 1)


def _log() -> MemoryEventStore:
    store = MemoryEventStore()
    store.append("s-1", [NewEvent("Noted", {})] * 5)
    store.append("s-bad", [NewEvent("Noted", {"bad": True}), *[NewEvent("Noted", {})] * 2])
    store.append("s-2", [NewEvent("Noted", {})] * 3)
    return store


def test_the_new_version_parks_a_failing_event_and_holds_its_stream_then_switches() -> None:
    store = _log()
    parking = Parking(max_attempts=2, base=0.001, cap=0.001)
    outcome = Rebuild(store, Processor("counter", Counter(), parking=parking), "test").run()
    assert outcome.switched and live_version(store, "counter") == 2
    counted = {key: int(raw) for key, raw in store.view_rows(versioned(VIEW, 2))}
    assert counted == {"s-1": 5, "s-2": 3}
    (parked,) = parked_keys(store, [versioned("counter", 2)])
    assert (parked.letter.key, len(parked.letter.held)) == ("s-bad", 2)


def test_a_projection_that_does_not_park_stops_the_rebuild_with_nothing_switched() -> None:
    store = _log()
    with pytest.raises(HandlerFailed):
        Rebuild(store, Processor("counter", Counter()), "test").run()
    assert live_version(store, "counter") == 1
    claim = read_claim(store, "counter")
    assert claim is not None and claim.state == "stopped"
