"""Sale: the catalog, checkouts and returns; every refusal names its field and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tillflow.engine import EventStore, MemoryEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import (
    CheckoutConflict,
    InvalidField,
    ProductDiscontinued,
    ProductExists,
    ReturnExceedsPurchase,
    UnknownCheckout,
    UnknownProduct,
)
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream
from tillflow.shop.sale.service import SaleService

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> EventStore:
    return MemoryEventStore(registry=REGISTRY)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store, clock=lambda: NOON)
    service.add_product(AddProduct("apple", "Apple", 120))
    service.add_product(AddProduct("bread", "Bread", 250))
    return service


def _heads(store: EventStore) -> dict[int, int]:
    return store.heads()


def _recorded(store: EventStore, checkout_id: str) -> CheckedOut:
    return store.read_stream(checkout_stream(checkout_id))[0].decode(CheckedOut)


def test_checkout_records_lines_at_catalog_prices_with_totals(
    store: EventStore, sale: SaleService
) -> None:
    receipt = sale.checkout(
        Checkout("c-1", "till-1", [LineRequest("apple", 3), LineRequest("bread", 1)])
    )
    assert receipt.streams == {"checkout-c-1": 1}
    checked = _recorded(store, "c-1")
    assert [(x.product_id, x.quantity, x.unit_price, x.line_total) for x in checked.lines] == [
        ("apple", 3, 120, 360),
        ("bread", 1, 250, 250),
    ]
    assert checked.total == 610
    assert (checked.till_id, checked.at) == ("till-1", NOON)


def test_same_product_on_two_lines_is_merged_in_first_seen_order(
    store: EventStore, sale: SaleService
) -> None:
    lines = [LineRequest("bread", 1), LineRequest("apple", 2), LineRequest("bread", 2)]
    sale.checkout(Checkout("c-1", "till-1", lines))
    merged = [(line.product_id, line.quantity) for line in _recorded(store, "c-1").lines]
    assert merged == [("bread", 3), ("apple", 2)]


def test_a_retried_checkout_returns_the_original_receipt_even_after_a_reprice(
    store: EventStore, sale: SaleService
) -> None:
    command = Checkout("c-1", "till-1", [LineRequest("apple", 3)])
    first = sale.checkout(command)
    sale.reprice_product(RepriceProduct("apple", 999))
    assert sale.checkout(command) == first
    assert sale.checkout_many([command]) == [first]
    assert store.stream_version(checkout_stream("c-1")) == 1
    assert _recorded(store, "c-1").total == 360


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        (Checkout("c-1", "till-2", [LineRequest("apple", 3)]), "till_id"),
        (Checkout("c-1", "till-1", [LineRequest("apple", 4)]), "lines"),
        (
            Checkout("c-1", "till-1", [LineRequest("apple", 3)], NOON + timedelta(hours=1)),
            "at",
        ),
    ],
)
def test_a_checkout_id_reused_with_other_content_is_a_conflict_naming_the_field(
    store: EventStore, sale: SaleService, changed: Checkout, field: str
) -> None:
    sale.checkout(Checkout("c-1", "till-1", [LineRequest("apple", 3)], NOON))
    heads = _heads(store)
    with pytest.raises(CheckoutConflict) as caught:
        sale.checkout(changed)
    assert caught.value.field == field
    assert _heads(store) == heads


@pytest.mark.parametrize(
    ("command", "error", "field"),
    [
        (Checkout("c-1", "t", [LineRequest("pear", 1)]), UnknownProduct, "lines[0].product_id"),
        (Checkout("c-1", "t", [LineRequest("apple", 0)]), InvalidField, "lines[0].quantity"),
        (Checkout("c-1", "t", [LineRequest("apple", -2)]), InvalidField, "lines[0].quantity"),
        (Checkout("c-1", "t", [LineRequest("apple", 10_001)]), InvalidField, "lines[0].quantity"),
        (
            Checkout("c-1", "t", [LineRequest("apple", 6000), LineRequest("apple", 6000)]),
            InvalidField,
            "lines[1].quantity",
        ),
        (Checkout("c-1", "t", [LineRequest("apple", 2.0)]), InvalidField, "lines[0].quantity"),  # type: ignore[arg-type]
        (
            Checkout("c-1", "t", [LineRequest("apple", float("nan"))]),  # type: ignore[arg-type]
            InvalidField,
            "lines[0].quantity",
        ),
        (Checkout("c-1", "t", [LineRequest("apple", True)]), InvalidField, "lines[0].quantity"),
        (Checkout("c-1", "t", []), InvalidField, "lines"),
        (Checkout("c-1", "t", [LineRequest("apple", 1)] * 101), InvalidField, "lines"),
        (Checkout("", "t", [LineRequest("apple", 1)]), InvalidField, "checkout_id"),
        (Checkout("c 1", "t", [LineRequest("apple", 1)]), InvalidField, "checkout_id"),
        (Checkout("c" * 101, "t", [LineRequest("apple", 1)]), InvalidField, "checkout_id"),
        (Checkout("c-1", "", [LineRequest("apple", 1)]), InvalidField, "till_id"),
        (
            Checkout("c-1", "t", [LineRequest("apple", 1)], datetime(2026, 1, 1)),
            InvalidField,
            "at",
        ),
    ],
)
def test_bad_checkouts_are_refused_naming_field_and_nothing_is_written(
    store: EventStore,
    sale: SaleService,
    command: Checkout,
    error: type[Exception],
    field: str,
) -> None:
    heads = _heads(store)
    with pytest.raises(error) as caught:
        sale.checkout(command)
    assert getattr(caught.value, "field", None) == field
    assert field.split("[", maxsplit=1)[0] in str(caught.value)
    assert _heads(store) == heads


def test_checkout_many_answers_each_command_on_its_own(sale: SaleService) -> None:
    outcomes = sale.checkout_many(
        [
            Checkout("c-1", "t", [LineRequest("apple", 1)]),
            Checkout("c-2", "t", [LineRequest("pear", 1)]),
            Checkout("c-3", "t", [LineRequest("bread", 2)]),
        ]
    )
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "Receipt",
        "UnknownProduct",
        "Receipt",
    ]


def test_checkout_time_is_kept_in_utc(store: EventStore, sale: SaleService) -> None:
    at = datetime(2026, 11, 27, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 1)], at))
    assert _recorded(store, "c-1").at == NOON + timedelta(minutes=30)


# -- catalog ---------------------------------------------------------------------------------


def test_catalog_changes_are_applied_in_order(sale: SaleService) -> None:
    sale.rename_product(RenameProduct("apple", "  Äpfel (Bio) 🍎 "))
    sale.reprice_product(RepriceProduct("apple", 0))
    product = sale.catalog().products["apple"]
    assert (product.name, product.price) == ("Äpfel (Bio) 🍎", 0)


@pytest.mark.parametrize(
    ("command", "error", "field"),
    [
        (AddProduct("apple", "Apple", 1), ProductExists, None),
        (AddProduct("pear", "", 1), InvalidField, "name"),
        (AddProduct("pear", "x" * 201, 1), InvalidField, "name"),
        (AddProduct("pear", "bad\x00name", 1), InvalidField, "name"),
        (AddProduct("pear", "Pear", -1), InvalidField, "price"),
        (AddProduct("pear", "Pear", 1.5), InvalidField, "price"),  # type: ignore[arg-type]
        (AddProduct("pear", "Pear", 10**12), InvalidField, "price"),
        (AddProduct("pe/ar", "Pear", 1), InvalidField, "product_id"),
        (RenameProduct("pear", "Pear"), UnknownProduct, "product_id"),
        (RepriceProduct("apple", -5), InvalidField, "price"),
    ],
)
def test_bad_catalog_commands_are_refused(
    store: EventStore,
    sale: SaleService,
    command: AddProduct | RenameProduct | RepriceProduct,
    error: type[Exception],
    field: str | None,
) -> None:
    heads = _heads(store)
    with pytest.raises(error) as caught:
        if isinstance(command, AddProduct):
            sale.add_product(command)
        elif isinstance(command, RenameProduct):
            sale.rename_product(command)
        else:
            sale.reprice_product(command)
    if field is not None:
        assert getattr(caught.value, "field", None) == field
    assert _heads(store) == heads


def test_a_discontinued_product_cannot_be_sold_or_changed(sale: SaleService) -> None:
    sale.discontinue_product(DiscontinueProduct("bread"))
    with pytest.raises(ProductDiscontinued):
        sale.checkout(Checkout("c-1", "t", [LineRequest("bread", 1)]))
    with pytest.raises(ProductDiscontinued):
        sale.reprice_product(RepriceProduct("bread", 1))


def test_two_services_on_one_store_see_each_others_catalog(
    store: EventStore, sale: SaleService
) -> None:
    other = SaleService(store)
    other.add_product(AddProduct("pear", "Pear", 90))
    assert "pear" in sale.catalog().products
    with pytest.raises(ProductExists):
        sale.add_product(AddProduct("pear", "Pear", 90))


# -- returns ---------------------------------------------------------------------------------


def test_returns_never_exceed_what_was_bought_net_of_earlier_returns(
    store: EventStore, sale: SaleService
) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 3), LineRequest("bread", 1)]))
    sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 2)]))
    with pytest.raises(ReturnExceedsPurchase) as caught:
        sale.return_items(ReturnItems("r-2", "c-1", [LineRequest("apple", 2)]))
    assert (caught.value.requested, caught.value.returnable) == (2, 1)
    receipt = sale.return_items(ReturnItems("r-3", "c-1", [LineRequest("apple", 1)]))
    assert receipt.streams == {"checkout-c-1": 3}
    returns = [
        e.decode(ItemsReturned)
        for e in store.read_stream(checkout_stream("c-1"))
        if e.type == "ItemsReturned"
    ]
    assert [(r.return_id, r.refund_total) for r in returns] == [("r-1", 240), ("r-3", 120)]


def test_a_retried_return_gets_its_original_receipt(sale: SaleService) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 3)]))
    command = ReturnItems("r-1", "c-1", [LineRequest("apple", 1)])
    first = sale.return_items(command)
    assert sale.return_items(command) == first
    with pytest.raises(CheckoutConflict) as caught:
        sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 2)]))
    assert caught.value.field == "lines"


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (ReturnItems("r-1", "c-404", [LineRequest("apple", 1)]), UnknownCheckout),
        (ReturnItems("r-1", "c-1", [LineRequest("bread", 1)]), InvalidField),
        (ReturnItems("r-1", "c-1", [LineRequest("apple", 0)]), InvalidField),
        (ReturnItems("r-1", "c-1", []), InvalidField),
        (ReturnItems("", "c-1", [LineRequest("apple", 1)]), InvalidField),
    ],
)
def test_bad_returns_are_refused(
    store: EventStore, sale: SaleService, command: ReturnItems, error: type[Exception]
) -> None:
    sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 1)]))
    heads = _heads(store)
    with pytest.raises(error):
        sale.return_items(command)
    assert _heads(store) == heads
