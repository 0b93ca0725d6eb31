"""The upcaster registry: chains checked at start-up, old events upcast step by step on
read, typed errors naming the type and the versions; and the shop's ``CheckedOut`` v1 → v2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tillflow.engine import (
    EventRegistry,
    InvalidEvent,
    MemoryEventStore,
    NewEvent,
    NoUpcastPath,
    Processor,
    RecordedEvent,
    Session,
    SqliteEventStore,
    UnknownEventType,
    UpcasterConflict,
    UpcasterGap,
    Upcasters,
)
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale.events import CheckedOut, checkout_stream
from tillflow.shop.sale.service import checkout_event
from tillflow.shop.sale.tenders import CARD, CASH, PaidTender
from tillflow.shop.sale.upcasters import CHECKED_OUT_VERSION, checked_out_v2
from tillflow.shop.sale.vat import BEFORE_VAT


def _recorded(event_type: str, version: int, data: object) -> RecordedEvent:
    return RecordedEvent(
        id=b"\x01" * 16,
        stream="s",
        version=1,
        lane=0,
        position=1,
        type=event_type,
        schema_version=version,
        data=msgspec.json.encode(data),
        recorded_at=0.0,
        causation_id=None,
        correlation_id=None,
    )


def _chain(*versions: int) -> Upcasters:
    """Upcasters of ``Seen`` from each of ``versions``, each appending its version to
    ``steps``."""
    upcasters = Upcasters()
    for version in versions:

        def step(data: dict[str, Any], version: int = version) -> dict[str, Any]:
            return {**data, "steps": [*data.get("steps", []), version]}

        upcasters.add("Seen", version, step)
    return upcasters


def test_an_old_event_is_upcast_through_every_step_in_order() -> None:
    registry = EventRegistry(["Seen", "Other"], _chain(2, 1, 3))
    upcasting = registry.upcasting
    assert upcasting is not None
    assert registry.version("Seen") == 4 and registry.version("Other") == 1
    for stored, steps in ((1, [1, 2, 3]), (2, [2, 3]), (3, [3])):
        upcast = upcasting.upcast(_recorded("Seen", stored, {}))
        assert (upcast.schema_version, upcast.payload()) == (4, {"steps": steps})


def test_current_events_are_given_back_untouched_in_the_same_list() -> None:
    upcasting = EventRegistry(["Seen", "Other"], _chain(1)).upcasting
    assert upcasting is not None
    events = [_recorded("Seen", 2, {"a": 1}), _recorded("Other", 1, {}), _recorded("New", 1, {})]
    assert upcasting.current(events) is events
    mixed = [events[0], _recorded("Seen", 1, {}), events[1]]
    current = upcasting.current(mixed)
    assert current[0] is events[0] and current[2] is events[1]
    assert current[1].schema_version == 2


def test_a_registry_without_upcasters_reads_nothing_again() -> None:
    assert EventRegistry(["Seen"]).upcasting is None
    assert EventRegistry(["Seen"], Upcasters()).upcasting is None


def test_a_second_upcaster_for_one_version_is_refused_at_registration() -> None:
    upcasters = _chain(1)
    with pytest.raises(UpcasterConflict) as refused:
        upcasters.add("Seen", 1, lambda data: data)
    assert (refused.value.event_type, refused.value.from_version) == ("Seen", 1)
    with pytest.raises(UpcasterConflict):
        upcasters.merged(_chain(1))


@pytest.mark.parametrize("version", [0, -1, 1.5, "1"])
def test_an_upcaster_from_no_version_is_refused(version: Any) -> None:
    with pytest.raises(InvalidEvent) as refused:
        Upcasters().add("Seen", version, lambda data: data)
    assert (refused.value.field, refused.value.value) == ("from_version", version)


@pytest.mark.parametrize(("steps", "missing", "current"), [((1, 3), 2, 4), ((2,), 1, 3)])
def test_a_chain_with_a_missing_step_is_refused_at_start_up(
    steps: tuple[int, ...], missing: int, current: int
) -> None:
    with pytest.raises(UpcasterGap) as refused:
        EventRegistry(["Seen"], _chain(*steps))
    assert (refused.value.event_type, refused.value.missing, refused.value.current) == (
        "Seen",
        missing,
        current,
    )
    assert f"no upcaster from version {missing} to {missing + 1}" in str(refused.value)


def test_an_upcaster_of_an_unknown_type_is_refused_at_start_up() -> None:
    upcasters = Upcasters()
    upcasters.add("Lost", 1, lambda data: data)
    with pytest.raises(UnknownEventType):
        EventRegistry(["Seen"], upcasters)


def test_an_event_newer_than_this_release_knows_is_a_typed_error() -> None:
    upcasting = EventRegistry(["Seen"], _chain(1)).upcasting
    assert upcasting is not None
    with pytest.raises(NoUpcastPath) as refused:
        upcasting.current([_recorded("Seen", 3, {})])
    assert (refused.value.event_type, refused.value.stored, refused.value.current) == (
        "Seen",
        3,
        2,
    )
    assert "Seen recorded at schema version 3 cannot be read as version 2" in str(refused.value)


@pytest.mark.parametrize(
    ("upcaster", "reason"),
    [
        (lambda data: data["missing"], "KeyError"),
        (lambda data: [data], "gave a list, not a dict"),
    ],
)
def test_an_upcaster_that_fails_is_a_typed_error_naming_its_step(
    upcaster: Any, reason: str
) -> None:
    upcasters = _chain(1)
    upcasters.add("Seen", 2, upcaster)
    upcasting = EventRegistry(["Seen"], upcasters).upcasting
    assert upcasting is not None
    with pytest.raises(NoUpcastPath) as refused:
        upcasting.upcast(_recorded("Seen", 1, {}))
    assert (refused.value.stored, refused.value.current) == (1, 3)
    assert "the upcaster from version 2 failed" in refused.value.reason
    assert reason in refused.value.reason or reason in repr(refused.value.__cause__)


def test_a_stored_version_with_no_path_fails_the_read_not_the_store(tmp_path: Path) -> None:
    """Written by a newer release (here: a store without the registry), read by this one."""
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as newer:
        newer.append("s", [NewEvent("Seen", {}, schema_version=5)])
    with SqliteEventStore(path, registry=EventRegistry(["Seen"], _chain(1))) as store:
        with pytest.raises(NoUpcastPath) as refused:
            store.read_stream("s")
        assert (refused.value.stored, refused.value.current) == (5, 2)
        assert store.stream_version("s") == 1


def test_a_processor_emits_at_the_types_current_version() -> None:
    registry = EventRegistry(["Seen", "Said"], _chain(1))
    store = MemoryEventStore(registry=registry)
    store.append("in", [NewEvent("Said", {})])

    def handler(event: RecordedEvent, session: Session) -> None:
        session.emit("out", "Seen", {"steps": []})

    LaneProcessor(store, Processor("p", handler, frozenset({"Said"})), 0).step()
    [emitted] = store.read_stream("out")
    assert (emitted.schema_version, emitted.payload()) == (2, {"steps": []})  # not upcast


# -- the shop's CheckedOut -----------------------------------------------------------------

V1_LINE: dict[str, Any] = {
    "product_id": "apple",
    "name": "Apple",
    "quantity": 3,
    "unit_price": 120,
    "line_total": 360,
}
V1_CHECKOUT: dict[str, Any] = {
    "checkout_id": "c-1",
    "till_id": "till-1",
    "at": "2026-03-02T09:01:00Z",
    "lines": [
        V1_LINE,
        {"product_id": "milk", "name": "Milk", "quantity": 1, "unit_price": 99, "line_total": 99},
    ],
    "total": 459,
}


def test_the_shop_records_checkouts_at_the_version_its_upcasters_lead_to() -> None:
    assert REGISTRY.version("CheckedOut") == CHECKED_OUT_VERSION == 2
    checked_out = msgspec.convert(V1_CHECKOUT, CheckedOut)
    assert checkout_event(checked_out).schema_version == CHECKED_OUT_VERSION


def test_a_checkout_before_payments_and_vat_reads_as_paid_in_cash_untaxed() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    store.append(checkout_stream("c-1"), [NewEvent("CheckedOut", V1_CHECKOUT)])
    [recorded] = store.read_stream(checkout_stream("c-1"))
    assert recorded.schema_version == 2
    data = recorded.payload()
    assert (data["tenders"], data["change"]) == (
        [
            {
                "type": CASH,
                "amount": 459,
                "handed": 459,
                "card": None,
                "code": None,
                "reference": None,
            }
        ],
        0,
    )
    assert [
        (line["tax_rate"], line["basis_points"], line["tax"], line["net"]) for line in data["lines"]
    ] == [(BEFORE_VAT, 0, 0, 360), (BEFORE_VAT, 0, 0, 99)]
    assert recorded.decode(CheckedOut).tenders == [PaidTender(CASH, 459, handed=459)]


def test_a_checkout_stamped_1_that_has_tenders_and_tax_keeps_them() -> None:
    """Releases between added tenders, then tax, and still stamped 1: only what is
    missing is filled in."""
    paid = {
        **V1_CHECKOUT,
        "tenders": [{"type": CARD, "amount": 459, "card": "t"}],
        "change": 0,
        "lines": [
            {
                **V1_LINE,
                "tax_rate": "standard",
                "basis_points": 2000,
                "tax": 60,
                "net": 300,
            }
        ],
    }
    assert checked_out_v2(msgspec.json.decode(msgspec.json.encode(paid))) == paid


def test_older_events_another_process_writes_read_upcast_from_the_file(tmp_path: Path) -> None:
    """One SQLite store object reads what another wrote: from the file into its ring of
    recent events (upcast on the way), and again from the ring."""
    registry = EventRegistry(["Seen", "Other"], _chain(1))
    path = tmp_path / "events.db"
    with (
        SqliteEventStore(path, registry=registry) as reader,
        SqliteEventStore(path, registry=registry) as writer,
    ):
        reader.append("s", [NewEvent("Other", {})])
        reader.read(0, 0, 1)
        writer.append("s", [NewEvent("Seen", {}), NewEvent("Other", {})])
        for _ in range(2):  # the first from the file, the second from the ring
            seen = [event for event in reader.read(0, 0, 3) if event.type == "Seen"]
            assert [(event.schema_version, event.payload()) for event in seen] == [
                (2, {"steps": [1]})
            ]


def test_a_processor_does_not_pass_an_event_it_cannot_read(tmp_path: Path) -> None:
    """A batch holding a version with no path fails whole: nothing of it is written and
    the checkpoint stays before it, however often the step is tried."""
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as newer:
        newer.append("s", [NewEvent("Other", {}), NewEvent("Seen", {}, schema_version=3)])
    handled: list[int] = []

    def handler(event: RecordedEvent, session: Session) -> None:
        handled.append(event.position)
        session.emit("out", "Other", {})

    registry = EventRegistry(["Seen", "Other"], _chain(1))
    with SqliteEventStore(path, registry=registry) as store:
        lane = LaneProcessor(store, Processor("p", handler), 0)
        for _ in range(2):
            with pytest.raises(NoUpcastPath):
                lane.step()
        assert (store.checkpoint("p", 0), store.head(0), handled) == (0, 2, [])
