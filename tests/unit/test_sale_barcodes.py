"""Barcodes in Sale: products carry a GTIN, unique in the catalog; a till rings up by it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tillflow.engine import EventStore, SqliteEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import (
    CheckoutConflict,
    DuplicateGtin,
    InvalidField,
    ProductDiscontinued,
    UnknownGtin,
)
from tillflow.shop.sale import service as sale_service
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductGtin,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    ReturnItems,
)
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, checkout_stream
from tillflow.shop.sale.service import SaleService

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PEN = "4006381333931"  # EAN-13
SODA = "036000291452"  # UPC-A
GUM = "73513537"  # EAN-8


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store, clock=lambda: NOON)
    service.add_product(AddProduct("pen", "Pen", 150, gtin=PEN))
    service.add_product(AddProduct("soda", "Soda", 99, gtin=SODA))
    service.add_product(AddProduct("bag", "Bag", 10))
    return service


def _scan(gtin: str, quantity: int = 1) -> LineRequest:
    return LineRequest(None, quantity, gtin=gtin)


def test_a_product_keeps_its_gtin_in_14_digits_and_the_catalog_indexes_it(
    sale: SaleService,
) -> None:
    catalog = sale.catalog()
    assert catalog.products["soda"].gtin == "00036000291452"
    assert catalog.products["bag"].gtin is None
    assert catalog.gtins == {"04006381333931": "pen", "00036000291452": "soda"}


def test_a_duplicate_gtin_is_refused_naming_it_and_its_holder(
    store: EventStore, sale: SaleService
) -> None:
    before = store.stream_version(CATALOG_STREAM)
    with pytest.raises(DuplicateGtin) as refused:
        sale.add_product(AddProduct("cola", "Cola", 120, gtin="0036000291452"))  # soda's EAN-13
    assert (refused.value.field, refused.value.gtin, refused.value.held_by) == (
        "gtin",
        "0036000291452",
        "soda",
    )
    with pytest.raises(DuplicateGtin):
        sale.change_gtin(ChangeProductGtin("bag", PEN))
    assert store.stream_version(CATALOG_STREAM) == before


def test_a_wrong_check_digit_is_refused_and_nothing_written(
    store: EventStore, sale: SaleService
) -> None:
    before = store.stream_version(CATALOG_STREAM)
    with pytest.raises(InvalidField) as refused:
        sale.add_product(AddProduct("ink", "Ink", 300, gtin="4006381333932"))
    assert (refused.value.field, refused.value.value) == ("gtin", "4006381333932")
    assert "check digit" in refused.value.reason
    assert store.stream_version(CATALOG_STREAM) == before


def test_a_gtin_can_be_set_moved_and_removed(sale: SaleService) -> None:
    sale.change_gtin(ChangeProductGtin("bag", GUM))
    sale.change_gtin(ChangeProductGtin("pen", None))
    sale.change_gtin(ChangeProductGtin("soda", PEN))  # free again
    catalog = sale.catalog()
    assert catalog.gtins == {"00000073513537": "bag", "04006381333931": "soda"}
    assert catalog.products["pen"].gtin is None


def test_a_till_rings_up_by_barcode_merged_with_lines_by_id(
    store: EventStore, sale: SaleService
) -> None:
    sale.checkout(
        Checkout("c-1", "till-1", [_scan(PEN), LineRequest("pen", 1), _scan("0036000291452", 2)])
    )
    recorded = store.read_stream(checkout_stream("c-1"))[0].decode(CheckedOut)
    assert [(line.product_id, line.quantity, line.gtin) for line in recorded.lines] == [
        ("pen", 2, "04006381333931"),
        ("soda", 2, "00036000291452"),
    ]
    assert recorded.total == 2 * 150 + 2 * 99


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (LineRequest("pen", 1, gtin=PEN), "lines[1]"),
        (LineRequest(None, 1), "lines[1].product_id"),
        (_scan("4006381333932"), "lines[1].gtin"),
        (_scan("4006381333"), "lines[1].gtin"),
    ],
)
def test_a_line_needs_exactly_one_of_product_id_and_a_valid_gtin(
    store: EventStore, sale: SaleService, line: LineRequest, field: str
) -> None:
    with pytest.raises(InvalidField) as refused:
        sale.checkout(Checkout("c-1", "till-1", [LineRequest("bag", 1), line]))
    assert refused.value.field == field
    assert store.stream_version(checkout_stream("c-1")) == 0


def test_an_unknown_gtin_is_refused_naming_it(store: EventStore, sale: SaleService) -> None:
    with pytest.raises(UnknownGtin) as refused:
        sale.checkout(Checkout("c-1", "till-1", [_scan(GUM)]))
    assert (refused.value.field, refused.value.gtin) == ("lines[0].gtin", GUM)
    assert store.stream_version(checkout_stream("c-1")) == 0


def test_a_discontinued_product_cannot_be_rung_up_by_its_barcode(sale: SaleService) -> None:
    sale.discontinue_product(DiscontinueProduct("pen"))
    with pytest.raises(ProductDiscontinued):
        sale.checkout(Checkout("c-1", "till-1", [_scan(PEN)]))
    with pytest.raises(DuplicateGtin):  # it keeps its GTIN
        sale.change_gtin(ChangeProductGtin("bag", PEN))


def test_a_retry_answers_the_first_sale_after_the_barcode_moved_or_went(
    store: EventStore, sale: SaleService
) -> None:
    first = sale.checkout(Checkout("c-1", "till-1", [_scan(SODA, 3)]))
    sale.change_gtin(ChangeProductGtin("soda", None))
    assert sale.checkout(Checkout("c-1", "till-1", [_scan(SODA, 3)])) == first
    sale.change_gtin(ChangeProductGtin("bag", SODA))  # now another product's
    assert sale.checkout(Checkout("c-1", "till-1", [_scan(SODA, 3)])) == first
    assert sale.checkout(Checkout("c-1", "till-1", [LineRequest("soda", 3)])) == first
    with pytest.raises(CheckoutConflict):
        sale.checkout(Checkout("c-1", "till-1", [_scan(PEN, 3)]))
    assert store.stream_version(checkout_stream("c-1")) == 1


def test_a_return_names_products_by_id(sale: SaleService) -> None:
    sale.checkout(Checkout("c-1", "till-1", [_scan(PEN)]))
    with pytest.raises(InvalidField) as refused:
        sale.return_items(ReturnItems("r-1", "c-1", [_scan(PEN)]))
    assert refused.value.field == "lines[0].gtin"


def test_a_barcode_another_process_just_gave_is_found_at_once(
    store: EventStore, sale: SaleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sale_service, "CATALOG_FRESH_FOR", 3600.0)  # the cache stays fresh
    sale.checkout(Checkout("c-1", "till-1", [LineRequest("bag", 1)]))  # caches the catalog
    SaleService(store).change_gtin(ChangeProductGtin("bag", GUM))  # another process
    sale.checkout(Checkout("c-2", "till-1", [_scan(GUM)]))
    recorded = store.read_stream(checkout_stream("c-2"))[0].decode(CheckedOut)
    assert recorded.lines[0].product_id == "bag"
