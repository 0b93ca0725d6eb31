"""Catalog import on PostgreSQL: 10,000 rows in one append, the same file again writes
nothing, a concurrent catalog change refuses it whole, and tills ring up by barcode."""

from __future__ import annotations

import pytest

from tillflow.engine import ConcurrencyConflict
from tillflow.engine.postgres import PostgresEventStore
from tillflow.service.catalog_csv import read_catalog
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale import service as sale_service
from tillflow.shop.sale.catalog import Catalog
from tillflow.shop.sale.catalog_import import ImportCatalog, ImportPlan, decide_import
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, RenameProduct
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, checkout_stream
from tillflow.shop.sale.gtin import check_digit
from tillflow.shop.sale.service import SaleService

ROWS = 10_000


def _file() -> list[str]:
    lines = ["product_id,name,price,gtin\n"]
    for number in range(ROWS):
        body = f"{400_000_000_000 + number:012d}"
        lines.append(f"p-{number},Product {number},{100 + number},{body}{check_digit(body)}\n")
    return lines


def test_ten_thousand_rows_import_once_and_ring_up_by_barcode(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        sale = SaleService(store)
        outcome = sale.import_catalog(read_catalog(_file()))
        assert outcome.plan.added == ROWS
        assert store.stream_version(CATALOG_STREAM) == ROWS
        assert sale.import_catalog(read_catalog(_file())).receipt is None
        assert store.stream_version(CATALOG_STREAM) == ROWS

        body = f"{400_000_000_000 + 42:012d}"
        scanned = LineRequest(None, 2, gtin=f"{body}{check_digit(body)}")
        sale.checkout(Checkout("c-1", "till-1", [scanned]))
        [recorded] = store.read_stream(checkout_stream("c-1"))
        line = recorded.decode(CheckedOut).lines[0]
        assert (line.product_id, line.quantity, line.unit_price) == ("p-42", 2, 142)


def test_a_concurrent_catalog_change_refuses_the_whole_import(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        sale = SaleService(store)
        sale.add_product(AddProduct("pen", "Pen", 150))

        def raced(catalog: Catalog, command: ImportCatalog) -> ImportPlan:
            plan = decide_import(catalog, command)
            SaleService(store).rename_product(RenameProduct("pen", "Ballpoint"))
            return plan

        monkeypatch.setattr(sale_service, "decide_import", raced)
        with pytest.raises(ConcurrencyConflict):
            sale.import_catalog(read_catalog(_file()[:100]))
        assert [event.type for event in store.read_stream(CATALOG_STREAM)] == [
            "ProductAdded",
            "ProductRenamed",
        ]
