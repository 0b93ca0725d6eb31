"""Low stock: a reorder point per product, and exactly one ``LowStock`` per crossing below it
— from a sale (Inventory's processor, also through a redo), a count, or a raised point."""

from __future__ import annotations

import pytest

from tillflow.engine import (
    ConcurrencyConflict,
    EventStore,
    HandlerFailed,
    LaneProcessor,
    MemoryEventStore,
    Processor,
    RecordedEvent,
)
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CheckoutConflict, InvalidField
from tillflow.shop.inventory.commands import CountStock, ReceiveStock, SetReorderPoint
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.inventory.stock import StockLevel, low_stock
from tillflow.shop.reporting.projection import reporting_processor
from tillflow.shop.reporting.queries import ReportReader
from tillflow.shop.reporting.rows import AsOf
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.service import SaleService


@pytest.fixture
def store() -> EventStore:
    return MemoryEventStore(registry=REGISTRY)


@pytest.fixture
def inventory(store: EventStore) -> InventoryService:
    return InventoryService(store)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store)
    service.add_product(AddProduct("apple", "Apple", 100))
    return service


def _kinds(store: EventStore, product_id: str = "apple") -> list[str]:
    return [event.type for event in store.read_stream(f"stock-{product_id}")]


def _alerts(store: EventStore, product_id: str = "apple") -> list[dict[str, object]]:
    return [
        event.payload()
        for event in store.read_stream(f"stock-{product_id}")
        if event.type == "LowStock"
    ]


def _run_inventory(store: EventStore) -> None:
    lane = LaneProcessor(store, inventory_processor(), 0)
    while lane.step().progressed:
        pass


def _sell(sale: SaleService, checkout_id: str, quantity: int) -> None:
    sale.checkout(Checkout(checkout_id, "t", [LineRequest("apple", quantity)]))


# -- the rule --------------------------------------------------------------------------------


def test_the_rule_alerts_only_when_crossing_from_not_low_to_low() -> None:
    point = 5
    levels = [8, 6, 4, 2, -1, 7, 5, 4, 3]  # down across, lower, back up, across again
    alerts = []
    before = StockLevel("apple", 0, 10, 0, point)
    for stock in levels:
        after = before.moved(stock)
        if low_stock(before, after, "sale") is not None:
            alerts.append(stock)
        before = after
    assert alerts == [4, 4]


def test_without_a_reorder_point_nothing_is_low_not_even_a_shortfall() -> None:
    level = StockLevel("apple", 1, -3, 3, 0)
    assert not level.low
    assert low_stock(StockLevel("apple", 0, 1), level, "sale") is None


# -- Inventory's processor: sales ------------------------------------------------------------


def test_one_alert_per_crossing_and_again_after_a_restock(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 10))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    assert _alerts(store) == []  # 10 is not below 5
    for number, quantity in enumerate([3, 3, 1, 2], start=1):  # 7, 4 (crossing), 3, 1
        _sell(sale, f"c-{number}", quantity)
    _run_inventory(store)
    assert _alerts(store) == [
        {"product_id": "apple", "by": "sale", "stock_after": 4, "short_after": 0,
         "reorder_point": 5, "checkout_id": "c-2"},
    ]  # fmt: skip
    inventory.receive(ReceiveStock("apple", 4))  # back to 5: at the point, no longer low
    assert not inventory.level("apple").low
    _sell(sale, "c-5", 1)
    _run_inventory(store)
    assert [(a["checkout_id"], a["stock_after"]) for a in _alerts(store)] == [
        ("c-2", 4),
        ("c-5", 4),
    ]


def test_a_sale_into_a_shortfall_alerts_after_the_apology(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 2))
    inventory.set_reorder_point(SetReorderPoint("apple", 1))
    _sell(sale, "c-1", 5)
    _run_inventory(store)
    assert _kinds(store)[-3:] == ["ProductTaken", "StockShortfall", "LowStock"]
    assert inventory.level("apple") == StockLevel("apple", 5, -3, 3, 1)


def test_a_return_that_lifts_the_stock_back_ends_the_episode(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 6))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    _sell(sale, "c-1", 2)  # 4: low
    _run_inventory(store)
    sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))  # 5: not low
    _sell(sale, "c-2", 1)  # 4: low again
    _run_inventory(store)
    assert [a["checkout_id"] for a in _alerts(store)] == ["c-1", "c-2"]


# -- Inventory's commands: counts and reorder points -----------------------------------------


def test_a_count_below_the_point_alerts_once(
    store: EventStore, inventory: InventoryService
) -> None:
    inventory.receive(ReceiveStock("apple", 10))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    inventory.count(CountStock("apple", 3))
    inventory.count(CountStock("apple", 2))  # still low: the same episode
    assert _kinds(store) == [
        "StockReceived",
        "ReorderPointSet",
        "StockCounted",
        "LowStock",
        "StockCounted",
    ]
    assert [(a["by"], a["stock_after"]) for a in _alerts(store)] == [("count", 3)]


def test_a_point_raised_above_the_stock_is_a_crossing_but_not_while_already_low(
    store: EventStore, inventory: InventoryService
) -> None:
    inventory.receive(ReceiveStock("apple", 4))
    receipt = inventory.set_reorder_point(SetReorderPoint("apple", 5))
    assert _kinds(store) == ["StockReceived", "ReorderPointSet", "LowStock"]
    assert receipt.streams == {"stock-apple": 3}  # the receipt names the whole append
    inventory.set_reorder_point(SetReorderPoint("apple", 8))  # still low: no second alert
    inventory.set_reorder_point(SetReorderPoint("apple", 4))  # 4 is not below 4: ends it
    inventory.set_reorder_point(SetReorderPoint("apple", 6))  # a new crossing
    assert [(a["by"], a["reorder_point"]) for a in _alerts(store)] == [
        ("reorder_point", 5),
        ("reorder_point", 6),
    ]
    inventory.set_reorder_point(SetReorderPoint("apple", 0))  # cleared
    assert inventory.level("apple") == StockLevel("apple", 8, 4, 0, 0)


def test_every_change_carries_the_point_in_force(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.set_reorder_point(SetReorderPoint("apple", 3))
    inventory.receive(ReceiveStock("apple", 5))
    _sell(sale, "c-1", 1)
    _run_inventory(store)
    events = store.read_stream("stock-apple")
    assert [(event.type, event.payload()["reorder_point"]) for event in events] == [
        ("ReorderPointSet", 3),
        ("LowStock", 3),  # nothing on the shelf yet: 0 is below 3
        ("StockReceived", 3),
        ("ProductTaken", 3),
    ]


def test_the_same_point_again_records_nothing_and_answers_the_stock_as_it_stands(
    store: EventStore, inventory: InventoryService
) -> None:
    inventory.receive(ReceiveStock("apple", 10))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    delivery = inventory.receive(ReceiveStock("apple", 1))
    assert inventory.set_reorder_point(SetReorderPoint("apple", 5)) == delivery
    assert _kinds(store) == ["StockReceived", "ReorderPointSet", "StockReceived"]


def test_a_change_id_makes_a_retry_answer_the_first_receipt(
    store: EventStore, inventory: InventoryService
) -> None:
    inventory.receive(ReceiveStock("apple", 4))
    first = inventory.set_reorder_point(SetReorderPoint("apple", 5, change_id="p-1"))
    inventory.set_reorder_point(SetReorderPoint("apple", 2))
    again = inventory.set_reorder_point(SetReorderPoint("apple", 5, change_id="p-1"))
    assert again == first  # not re-applied: the later point stands
    assert inventory.level("apple").reorder_point == 2
    with pytest.raises(CheckoutConflict) as caught:
        inventory.set_reorder_point(SetReorderPoint("apple", 6, change_id="p-1"))
    assert caught.value.field == "reorder_point"
    with pytest.raises(CheckoutConflict) as caught:
        inventory.set_reorder_point(SetReorderPoint("bread", 5, change_id="p-1"))
    assert caught.value.field == "product_id"
    assert len(_alerts(store)) == 1
    assert store.stream_version("stock-bread") == 0


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (SetReorderPoint("apple", -1), "reorder_point"),
        (SetReorderPoint("apple", 2.5), "reorder_point"),  # type: ignore[arg-type]
        (SetReorderPoint("apple", True), "reorder_point"),
        (SetReorderPoint("apple", "5"), "reorder_point"),  # type: ignore[arg-type]
        (SetReorderPoint("apple", 10**9), "reorder_point"),
        (SetReorderPoint("", 5), "product_id"),
        (SetReorderPoint("apple", 5, change_id="a b"), "change_id"),
    ],
)
def test_a_bad_reorder_point_is_refused_naming_the_field(
    store: EventStore, inventory: InventoryService, command: SetReorderPoint, field: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        inventory.set_reorder_point(command)
    assert caught.value.field == field
    assert store.heads() == {0: 0}


# -- redo and crashes ------------------------------------------------------------------------


def test_a_redo_decides_the_crossing_again_with_the_point_that_landed_in_between(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    """A reorder point set while the processor's batch ran makes its commit fail whole (the
    stream's version moved); the redo sees the new point and alerts exactly once."""
    inventory.receive(ReceiveStock("apple", 6))
    _sell(sale, "c-1", 2)
    lane = LaneProcessor(store, inventory_processor(), 0)
    declared = lane.processor

    def racing(event: RecordedEvent, session: object) -> None:
        declared.handler(event, session)  # type: ignore[arg-type]
        if event.type == "CheckedOut":
            inventory.set_reorder_point(SetReorderPoint("apple", 5))

    # the conflict is raised, not redone in the same step: the redo is the next step
    raced = LaneProcessor(
        store, Processor(declared.name, racing, declared.types), 0, scheduled=True
    )
    with pytest.raises(ConcurrencyConflict):
        raced.step()
    assert _alerts(store) == []  # 6 was not below 5: the point alone did not cross
    _run_inventory(store)
    assert _kinds(store) == ["StockReceived", "ReorderPointSet", "ProductTaken", "LowStock"]
    assert [(a["checkout_id"], a["stock_after"]) for a in _alerts(store)] == [("c-1", 4)]


def test_a_crash_while_handling_the_crossing_sale_leaves_it_undone_and_the_rerun_alerts_once(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 6))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    _sell(sale, "c-0", 1)  # 5: not low
    _sell(sale, "c-1", 2)  # 3: the crossing
    _sell(sale, "c-2", 1)  # 2: the same episode
    declared = inventory_processor()
    crashes: list[int] = []

    def crashing(event: RecordedEvent, session: object) -> None:
        declared.handler(event, session)  # type: ignore[arg-type]
        if event.type == "CheckedOut" and event.stream == "checkout-c-1" and not crashes:
            crashes.append(event.position)
            raise RuntimeError("power cut after deciding the alert")

    crashed = LaneProcessor(store, Processor(declared.name, crashing, declared.types), 0)
    with pytest.raises(HandlerFailed):
        crashed.step()
    assert _alerts(store) == []  # only c-0 committed
    assert _kinds(store)[-1] == "ProductTaken"
    while crashed.step().progressed:  # the same lane carries on past the crash
        pass
    _run_inventory(store)  # nothing left: another run adds nothing
    assert [a["checkout_id"] for a in _alerts(store)] == ["c-1"]
    assert inventory.level("apple").stock == 2


# -- the report ------------------------------------------------------------------------------


def _run_shop(store: EventStore) -> None:
    for processor in (inventory_processor(), reporting_processor()):
        lane = LaneProcessor(store, processor, 0)
        while lane.step().progressed:
            pass


def test_the_report_row_shows_the_point_and_since_when_the_product_is_low(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 6))
    inventory.set_reorder_point(SetReorderPoint("apple", 5))
    _sell(sale, "c-1", 2)
    _sell(sale, "c-2", 1)
    _run_shop(store)
    [crossing] = [e for e in store.read_stream("stock-apple") if e.type == "LowStock"]
    row = ReportReader(store).row("apple")
    assert row is not None
    assert (row.stock_left, row.reorder_point, row.low_alerts) == (3, 5, 1)
    assert row.low_since == AsOf(crossing.lane, crossing.position, crossing.recorded_at, 4)
    inventory.receive(ReceiveStock("apple", 2))  # 5: no longer low
    _run_shop(store)
    row = ReportReader(store).row("apple")
    assert row is not None
    assert (row.stock_left, row.low_since, row.low_alerts) == (5, None, 1)


def test_the_report_reaches_a_point_set_by_a_command_and_its_alert(
    store: EventStore, inventory: InventoryService
) -> None:
    """``ReorderPointSet`` and a ``LowStock`` appended with it are among the report's types:
    waiting for the command's receipt finds the row as of the alert."""
    inventory.receive(ReceiveStock("apple", 2))
    receipt = inventory.set_reorder_point(SetReorderPoint("apple", 3))
    _run_shop(store)
    row = ReportReader(store).row("apple")
    assert row is not None
    assert row.as_of.version == receipt.streams["stock-apple"] == 3
    assert (row.reorder_point, row.low_alerts) == (3, 1)
    assert row.low_since is not None and row.low_since.version == 3
    inventory.set_reorder_point(SetReorderPoint("apple", 0))  # cleared: not low
    _run_shop(store)
    row = ReportReader(store).row("apple")
    assert row is not None
    assert (row.reorder_point, row.low_since) == (0, None)
