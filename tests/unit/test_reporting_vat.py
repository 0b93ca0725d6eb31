"""The report's tax: per product row from Inventory's events (the same version as the revenue),
totals by rate that add up; a report kept before VAT opens with its revenue untaxed."""

from __future__ import annotations

import msgspec

from tests.unit.test_reporting_projection import Bench, checkout
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.inventory.events import ProductTaken
from tillflow.shop.reporting.audit import rate_violations, totals_violations
from tillflow.shop.reporting.rows import ProductRow, RateTotals, Totals
from tillflow.shop.sale.commands import AddProduct, DefineTaxRate, LineRequest, ReturnItems
from tillflow.shop.sale.vat import BEFORE_VAT


def _bench() -> Bench:
    bench = Bench()
    bench.sale.add_product(AddProduct("wine", "Wine", 1199))
    bench.sale.add_product(AddProduct("bread", "Bread", 250, tax_rate="reduced"))
    bench.sale.add_product(AddProduct("book", "Book", 1500, tax_rate="zero"))
    for product_id in ("wine", "bread", "book"):
        bench.stock.receive(ReceiveStock(product_id, 20))
    return bench


def test_rows_and_totals_carry_the_tax_by_rate_net_of_refunds() -> None:
    bench = _bench()
    checkout(bench, "c-1", wine=2, bread=3, book=1)
    checkout(bench, "c-2", bread=1)
    bench.sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("wine", 1)]))
    bench.run()
    taken = bench.event("wine", 2).decode(ProductTaken)
    assert (taken.tax, taken.tax_rate, taken.basis_points) == (400, "standard", 2000)
    wine, bread, book = bench.row("wine"), bench.row("bread"), bench.row("book")
    assert (wine.revenue, wine.tax, wine.tax_rate) == (1199, 200, "standard")
    assert (bread.revenue, bread.tax, bread.tax_rate) == (1000, 36 + 12, "reduced")
    assert (book.revenue, book.tax) == (1500, 0)
    totals = bench.totals()
    assert (totals.revenue, totals.tax) == (1199 + 1000 + 1500, 200 + 48)
    assert totals.by_rate == [
        RateTotals("reduced", 500, 1000, 48, 952),
        RateTotals("standard", 2000, 1199, 200, 999),
        RateTotals("zero", 0, 1500, 0, 1500),
    ]
    assert totals_violations(bench.rows(), totals) == []
    assert bench.cut_problems() == []  # the rows' tax is Inventory's stream folded


def test_a_resized_rate_gets_its_own_entry() -> None:
    bench = _bench()
    checkout(bench, "c-1", wine=1)
    bench.sale.define_tax_rate(DefineTaxRate("standard", 1900))
    checkout(bench, "c-2", wine=1)
    bench.run()
    assert bench.totals().by_rate == [
        RateTotals("standard", 1900, 1199, 191, 1008),
        RateTotals("standard", 2000, 1199, 200, 999),
    ]


def test_the_audit_catches_rates_that_do_not_add_up() -> None:
    totals = Totals(revenue=300, tax=50, by_rate=[RateTotals("standard", 2000, 300, 40, 260)])
    assert rate_violations(totals) == ["totals.tax = 50, rates add up to 40"]
    rows = [ProductRow("wine", revenue=300, tax=50)]
    assert totals_violations(rows, totals) == ["totals.tax = 50, rates add up to 40"]
    totals.by_rate[0].net = 250
    assert "net 250 + tax 40 is not its revenue 300" in rate_violations(totals)[0]


def test_totals_kept_before_vat_open_with_their_revenue_as_untaxed() -> None:
    old = b'{"revenue":500,"checkouts":2,"units_sold":3}'
    totals = msgspec.json.decode(old, type=Totals)
    assert totals.by_rate == [RateTotals(BEFORE_VAT, 0, 500, 0, 500)]
    totals.sold(120, 20, "standard", 2000)
    assert rate_violations(totals) == []
    assert (totals.revenue, totals.tax) == (620, 20)
    assert msgspec.json.decode(msgspec.json.encode(totals), type=Totals) == totals
    assert msgspec.json.decode(b"{}", type=Totals).by_rate == []
