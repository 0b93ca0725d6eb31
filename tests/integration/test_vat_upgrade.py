"""A SQLite shop recorded before VAT opens and goes on: its old events (no tax rate on
products, no tax on lines) read as untaxed, the report shows them under rate ``""``, and
sales after the upgrade are taxed — every figure still adds up and the audit holds."""

from __future__ import annotations

from pathlib import Path

from tillflow.engine import NewEvent, SqliteEventStore
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.reporting.audit import ConsistentCutAudit, rate_violations
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.rows import RateTotals
from tillflow.shop.sale.commands import Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, checkout_stream

OLD_PRODUCT = {"product_id": "apple", "name": "Apple", "price": 120}
OLD_CHECKOUT = {
    "checkout_id": "c-old",
    "till_id": "till-1",
    "at": "2026-01-01T09:00:00Z",
    "lines": [
        {
            "product_id": "apple",
            "name": "Apple",
            "quantity": 3,
            "unit_price": 120,
            "line_total": 360,
        }
    ],
    "total": 360,
}


async def test_a_shop_recorded_before_vat_opens_and_goes_on_taxed(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=REGISTRY) as store:  # as the shop wrote them before
        store.append(CATALOG_STREAM, [NewEvent("ProductAdded", OLD_PRODUCT)])
        store.append(checkout_stream("c-old"), [NewEvent("CheckedOut", OLD_CHECKOUT)])

    with SqliteEventStore(path, registry=REGISTRY) as store:
        shop = Shop(store)
        [old] = store.read_stream(checkout_stream("c-old"))
        [line] = old.decode(CheckedOut).lines
        assert (line.tax_rate, line.tax, line.net) == ("", 0, 360)
        assert shop.sale.catalog().products["apple"].tax_rate == "standard"
        async with shop.runtime() as runtime:
            await shop.sale.checkout_async(Checkout("c-new", "till-1", [LineRequest("apple", 2)]))
            shop.sale.return_items(ReturnItems("r-old", "c-old", [LineRequest("apple", 1)]))
            await runtime.drain(timeout=30)
        totals = shop.report.totals()
        assert totals.by_rate == [
            RateTotals("", 0, 360 - 120, 0, 240),  # before VAT, one unit since returned
            RateTotals("standard", 2000, 240, 40, 200),
        ]
        assert (totals.revenue, totals.tax) == (480, 40)
        assert rate_violations(totals) == []
        assert ConsistentCutAudit(REPORT_VIEWS)(store) == []
        [row] = shop.report.rows()
        assert (row.revenue, row.tax, row.tax_rate) == (480, 40, "standard")
