"""Inventory: deliveries, counts, and its processor taking checkouts off the shelf — never
refusing a sale, apologising when stock was not there."""

from __future__ import annotations

import pytest

from tillflow.engine import (
    ConcurrencyConflict,
    EventStore,
    LaneProcessor,
    MemoryEventStore,
    Processor,
    RecordedEvent,
)
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CheckoutConflict, InvalidField
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.inventory.stock import StockLevel
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
    service.add_product(AddProduct("bread", "Bread", 200))
    return service


def _stream(store: EventStore, product_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.type, e.payload()) for e in store.read_stream(f"stock-{product_id}")]


def _run_inventory(store: EventStore) -> None:
    lane = LaneProcessor(store, inventory_processor(), 0)
    while lane.step().progressed:
        pass


def test_a_product_never_seen_starts_at_zero(inventory: InventoryService) -> None:
    assert inventory.level("never-seen") == StockLevel("never-seen", 0, 0, 0)


def test_deliveries_and_counts_carry_the_level_after_them(
    store: EventStore, inventory: InventoryService
) -> None:
    inventory.receive(ReceiveStock("apple", 10))
    inventory.count(CountStock("apple", 7))
    assert _stream(store, "apple") == [
        ("StockReceived", {"product_id": "apple", "quantity": 10, "stock_after": 10,
                           "short_after": 0, "delivery_id": None, "reorder_point": 0}),
        ("StockCounted", {"product_id": "apple", "counted": 7, "difference": -3,
                          "stock_after": 7, "short_after": 0, "count_id": None,
                          "reorder_point": 0}),
    ]  # fmt: skip


def test_a_sale_is_never_refused_and_the_shortfall_is_apologised_for(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    inventory.receive(ReceiveStock("apple", 2))
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 5)]))
    _run_inventory(store)
    events = _stream(store, "apple")
    assert [kind for kind, _ in events] == ["StockReceived", "ProductTaken", "StockShortfall"]
    taken, apology = events[1][1], events[2][1]
    assert (taken["stock_after"], taken["short_after"]) == (-3, 3)
    assert (apology["checkout_id"], apology["units_short"]) == ("c-1", 3)
    assert inventory.level("apple").short == 3


def test_units_short_count_only_what_this_sale_took_beyond_the_shelf(
    store: EventStore, sale: SaleService
) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 2)]))
    sale.checkout(Checkout("c-2", "t", [LineRequest("apple", 3)]))
    _run_inventory(store)
    apologies = [data for kind, data in _stream(store, "apple") if kind == "StockShortfall"]
    assert [(a["checkout_id"], a["units_short"], a["short_after"]) for a in apologies] == [
        ("c-1", 2, 2),
        ("c-2", 3, 5),
    ]


def test_a_delivery_that_covers_the_shortfall_resolves_it(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 4)]))
    _run_inventory(store)
    inventory.receive(ReceiveStock("apple", 1))
    assert inventory.level("apple").short == 3
    assert _stream(store, "apple")[-1][0] == "StockReceived"  # still short: no resolution
    inventory.receive(ReceiveStock("apple", 5))
    kinds = [kind for kind, _ in _stream(store, "apple")]
    assert kinds[-2:] == ["StockReceived", "ShortfallResolved"]
    assert inventory.level("apple") == StockLevel("apple", 5, 2, 0)


def test_a_count_resolves_a_shortfall_and_a_return_can_too(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 2), LineRequest("bread", 1)]))
    _run_inventory(store)
    inventory.count(CountStock("apple", 0))
    assert [kind for kind, _ in _stream(store, "apple")][-2:] == [
        "StockCounted",
        "ShortfallResolved",
    ]
    sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("bread", 1)]))
    _run_inventory(store)
    assert [kind for kind, _ in _stream(store, "bread")][-2:] == [
        "ProductReturned",
        "ShortfallResolved",
    ]
    assert inventory.level("bread") == StockLevel("bread", 4, 0, 0)


def test_a_delivery_id_makes_a_retry_harmless(
    store: EventStore, inventory: InventoryService
) -> None:
    first = inventory.receive(ReceiveStock("apple", 10, delivery_id="d-1"))
    assert inventory.receive(ReceiveStock("apple", 10, delivery_id="d-1")) == first
    with pytest.raises(CheckoutConflict) as caught:
        inventory.receive(ReceiveStock("apple", 11, delivery_id="d-1"))
    assert caught.value.field == "quantity"
    assert inventory.level("apple").stock == 10


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (CountStock("apple", -1), "counted"),
        (CountStock("apple", 1.5), "counted"),  # type: ignore[arg-type]
        (ReceiveStock("apple", 0), "quantity"),
        (ReceiveStock("apple", -4), "quantity"),
        (ReceiveStock("apple", 10**9), "quantity"),
        (ReceiveStock("apple", float("inf")), "quantity"),  # type: ignore[arg-type]
        (ReceiveStock("", 1), "product_id"),
        (ReceiveStock("apple", 1, delivery_id="a b"), "delivery_id"),
    ],
)
def test_bad_stock_commands_are_refused_naming_the_field(
    store: EventStore, inventory: InventoryService, command: CountStock | ReceiveStock, field: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        if isinstance(command, CountStock):
            inventory.count(command)
        else:
            inventory.receive(command)
    assert caught.value.field == field
    assert store.heads() == {0: 0}


def test_inventory_redoes_a_batch_when_a_delivery_lands_in_between(
    store: EventStore, inventory: InventoryService, sale: SaleService
) -> None:
    """The processor guards each product stream with the version it read: a delivery
    committed while its batch ran makes the commit fail whole; the redo includes it."""
    inventory.receive(ReceiveStock("apple", 5))
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 2)]))
    lane = LaneProcessor(store, inventory_processor(), 0)
    declared = lane.processor

    def racing(event: RecordedEvent, session: object) -> None:
        declared.handler(event, session)  # type: ignore[arg-type]
        if event.type == "CheckedOut":
            inventory.receive(ReceiveStock("apple", 10))

    # the conflict is raised, not redone in the same step: the redo is the next step
    raced = LaneProcessor(
        store, Processor(declared.name, racing, declared.types), 0, scheduled=True
    )
    with pytest.raises(ConcurrencyConflict):
        raced.step()
    _run_inventory(store)
    kinds = [(kind, data["stock_after"]) for kind, data in _stream(store, "apple")]
    assert kinds == [("StockReceived", 5), ("StockReceived", 15), ("ProductTaken", 13)]
