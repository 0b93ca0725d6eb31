"""VAT in Sale's decisions: the rate table, a product's rate, net / tax / gross recorded on
every checkout and return line; bad rates refused naming the field, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tillflow.engine import EventStore, MemoryEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import InvalidField, UnknownProduct, UnknownTaxRate
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductTaxRate,
    Checkout,
    DefineTaxRate,
    LineRequest,
    ReturnItems,
)
from tillflow.shop.sale.events import (
    CheckedOut,
    CheckoutLine,
    ItemsReturned,
    ProductAdded,
    checkout_stream,
)
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.tax_rates import RateSummary, by_rate
from tillflow.shop.sale.vat import BEFORE_VAT, DEFAULT_RATES, tax_in

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> EventStore:
    return MemoryEventStore(registry=REGISTRY)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store, clock=lambda: NOON)
    service.add_product(AddProduct("wine", "Wine", 1199))  # standard by default
    service.add_product(AddProduct("bread", "Bread", 250, tax_rate="reduced"))
    service.add_product(AddProduct("book", "Book", 1500, tax_rate="zero"))
    return service


def _recorded(store: EventStore, checkout_id: str) -> CheckedOut:
    return store.read_stream(checkout_stream(checkout_id))[0].decode(CheckedOut)


def _checkout(sale: SaleService, checkout_id: str, **lines: int) -> CheckedOut:
    requests = [LineRequest(product, quantity) for product, quantity in lines.items()]
    return sale.checkout_recorded(Checkout(checkout_id, "till-1", requests))[1]


def test_each_line_records_its_rate_net_tax_and_gross(store: EventStore, sale: SaleService) -> None:
    recorded = _checkout(sale, "c-1", wine=2, bread=3, book=1)
    assert recorded == _recorded(store, "c-1")
    assert [
        (x.product_id, x.tax_rate, x.basis_points, x.line_total, x.tax, x.net)
        for x in recorded.lines
    ] == [
        ("wine", "standard", 2000, 2398, 400, 1998),  # 399.67
        ("bread", "reduced", 500, 750, 36, 714),  # 35.71
        ("book", "zero", 0, 1500, 0, 1500),
    ]
    assert recorded.total == sum(line.net + line.tax for line in recorded.lines)


def test_one_cent_lines_carry_no_tax_and_the_sum_still_matches(sale: SaleService) -> None:
    sale.add_product(AddProduct("sweet", "Sweet", 1))
    recorded = _checkout(sale, "c-1", sweet=1)
    [line] = recorded.lines
    assert (line.line_total, line.tax, line.net) == (1, 0, 1)
    many = _checkout(sale, "c-2", sweet=3)  # 3 cents: 0.5 → 0 (half to even)
    assert (many.lines[0].tax, many.lines[0].net) == (0, 3)


def test_a_resized_rate_taxes_later_sales_and_a_retry_keeps_the_first_answer(
    sale: SaleService,
) -> None:
    first = _checkout(sale, "c-1", wine=1)
    sale.define_tax_rate(DefineTaxRate("standard", 1900))
    later = _checkout(sale, "c-2", wine=1)
    assert (first.lines[0].basis_points, first.lines[0].tax) == (2000, 200)
    assert (later.lines[0].basis_points, later.lines[0].tax) == (1900, 191)
    assert _checkout(sale, "c-1", wine=1) == first  # the retry: as first recorded


def test_a_product_moved_to_a_new_rate_is_sold_at_it(sale: SaleService) -> None:
    sale.define_tax_rate(DefineTaxRate("super-reduced", 210))
    sale.change_tax_rate(ChangeProductTaxRate("bread", "super-reduced"))
    assert sale.catalog().products["bread"].tax_rate == "super-reduced"
    assert sale.catalog().rates == {**DEFAULT_RATES, "super-reduced": 210}
    [line] = _checkout(sale, "c-1", bread=4).lines
    assert (line.tax_rate, line.basis_points, line.tax) == ("super-reduced", 210, 21)


def test_returns_refund_the_lines_tax_in_proportion_exactly_once(
    store: EventStore, sale: SaleService
) -> None:
    sale.add_product(AddProduct("gum", "Gum", 33))
    [line] = _checkout(sale, "c-1", gum=3).lines  # 99 at 20 %: 16.5 → 16
    assert line.tax == 16
    taxes = []
    for number in range(3):
        sale.return_items(ReturnItems(f"r-{number}", "c-1", [LineRequest("gum", 1)]))
        returned = store.read_stream(checkout_stream("c-1"))[-1].decode(ItemsReturned)
        [back] = returned.lines
        assert (back.refund, back.tax + back.net) == (33, 33)
        assert (back.tax_rate, back.basis_points) == ("standard", 2000)
        taxes.append(back.tax)
    assert taxes == [5, 6, 5]  # a unit alone would be 5.5 → 6, 18 in all: more than collected
    assert sum(taxes) == line.tax


@pytest.mark.parametrize("rate", ["luxury", "Standard", "zero-rated"])
def test_an_unknown_rate_is_refused_naming_field_and_value_and_nothing_is_written(
    store: EventStore, sale: SaleService, rate: str
) -> None:
    heads = store.heads()
    with pytest.raises(UnknownTaxRate) as refused:
        sale.add_product(AddProduct("tea", "Tea", 300, tax_rate=rate))
    assert (refused.value.field, refused.value.value) == ("tax_rate", rate)
    assert isinstance(refused.value, InvalidField)
    assert refused.value.known == ("reduced", "standard", "zero")
    with pytest.raises(UnknownTaxRate):
        sale.change_tax_rate(ChangeProductTaxRate("wine", rate))
    assert store.heads() == heads


@pytest.mark.parametrize("rate", [7, None, ["standard"], "", "no spaces"])
def test_a_rate_name_that_is_no_name_is_refused_naming_tax_rate(
    store: EventStore, sale: SaleService, rate: object
) -> None:
    heads = store.heads()
    with pytest.raises(InvalidField) as refused:
        sale.add_product(AddProduct("tea", "Tea", 300, tax_rate=rate))  # type: ignore[arg-type]
    assert refused.value.field == "tax_rate"
    assert store.heads() == heads


@pytest.mark.parametrize(
    ("rate", "points", "field"),
    [
        ("standard", -1, "basis_points"),
        ("standard", 10_001, "basis_points"),
        ("standard", True, "basis_points"),
        ("standard", 20.0, "basis_points"),
        ("standard", "2000", "basis_points"),
        ("no spaces", 2000, "rate"),
        (5, 2000, "rate"),
    ],
)
def test_a_bad_rate_definition_is_refused_naming_the_field(
    store: EventStore, sale: SaleService, rate: object, points: object, field: str
) -> None:
    heads = store.heads()
    with pytest.raises(InvalidField) as refused:
        sale.define_tax_rate(DefineTaxRate(rate, points))  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.value) == (
        field,
        rate if field == "rate" else points,
    )
    assert store.heads() == heads
    assert sale.catalog().rates == DEFAULT_RATES


def test_a_checkout_and_a_return_sum_up_per_rate_as_a_receipt_prints_them(
    store: EventStore, sale: SaleService
) -> None:
    sold = _checkout(sale, "c-1", wine=2, bread=3, book=1)
    assert by_rate(sold.lines) == [
        RateSummary("reduced", 500, 714, 36, 750),
        RateSummary("standard", 2000, 1998, 400, 2398),
        RateSummary("zero", 0, 1500, 0, 1500),
    ]
    assert sum(summary.gross for summary in by_rate(sold.lines)) == sold.total
    sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("wine", 1), LineRequest("book", 1)]))
    returned = store.read_stream(checkout_stream("c-1"))[-1].decode(ItemsReturned)
    assert by_rate(returned.lines) == [
        RateSummary("standard", 2000, 999, 200, 1199),
        RateSummary("zero", 0, 1500, 0, 1500),
    ]


def test_moving_an_unknown_product_is_refused(sale: SaleService) -> None:
    with pytest.raises(UnknownProduct):
        sale.change_tax_rate(ChangeProductTaxRate("kiwi", "zero"))


def test_events_recorded_before_vat_decode_as_untaxed() -> None:
    added = msgspec.json.decode(b'{"product_id":"a","name":"A","price":5}', type=ProductAdded)
    assert added.tax_rate == "standard"
    old = (
        b'{"checkout_id":"c","till_id":"t","at":"2026-01-01T00:00:00Z","total":10,'
        b'"lines":[{"product_id":"a","name":"A","quantity":2,"unit_price":5,"line_total":10}]}'
    )
    [line] = msgspec.json.decode(old, type=CheckedOut).lines
    assert (line.tax_rate, line.basis_points, line.tax, line.net) == (BEFORE_VAT, 0, 0, 10)


_PRODUCTS = st.lists(
    st.tuples(st.integers(0, 100_000), st.sampled_from(sorted(DEFAULT_RATES))),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(products=_PRODUCTS, data=st.data())
def test_any_basket_and_its_returns_add_up(
    products: list[tuple[int, str]], data: st.DataObject
) -> None:
    store = MemoryEventStore(registry=REGISTRY)
    sale = SaleService(store, clock=lambda: NOON)
    for number, (price, rate) in enumerate(products):
        sale.add_product(AddProduct(f"p{number}", f"P{number}", price, tax_rate=rate))
    chosen = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(products) - 1), st.integers(1, 50)),
            min_size=1,
            max_size=20,
        )
    )
    basket = [LineRequest(f"p{number}", quantity) for number, quantity in chosen]
    _, recorded = sale.checkout_recorded(Checkout("c", "till", basket))
    assert recorded.total == sum(line.line_total for line in recorded.lines)
    assert recorded.total == sum(line.net for line in recorded.lines) + sum(
        line.tax for line in recorded.lines
    )
    for line in recorded.lines:
        price, rate = products[int(line.product_id[1:])]
        assert line.line_total == price * line.quantity
        assert line.basis_points == DEFAULT_RATES[rate]
        assert line.tax == tax_in(line.line_total, line.basis_points)
    refunded: dict[str, int] = {}
    for step, (product_id, quantity) in enumerate(_returns(data, recorded.lines)):
        sale.return_items(ReturnItems(f"r{step}", "c", [LineRequest(product_id, quantity)]))
        [back] = store.read_stream(checkout_stream("c"))[-1].decode(ItemsReturned).lines
        assert back.net + back.tax == back.refund and 0 <= back.tax <= back.refund
        refunded[back.product_id] = refunded.get(back.product_id, 0) + back.tax
    for line in recorded.lines:
        assert refunded.get(line.product_id, 0) == line.tax  # everything came back


def _returns(data: st.DataObject, lines: list[CheckoutLine]) -> list[tuple[str, int]]:
    """Every unit of every line brought back, in pieces of random size and order."""
    left = {line.product_id: line.quantity for line in lines}
    pieces = []
    while left:
        product_id = data.draw(st.sampled_from(sorted(left)))
        piece = data.draw(st.integers(1, left[product_id]))
        pieces.append((product_id, piece))
        left[product_id] -= piece
        if not left[product_id]:
            del left[product_id]
    return pieces
