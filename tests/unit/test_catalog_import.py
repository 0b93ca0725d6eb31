"""Catalog import: CSV rows → the catalog events that make the catalog say what they say;
every bad row field reported by line; all or nothing; the same file again writes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tillflow.engine import ConcurrencyConflict, EventStore, SqliteEventStore
from tillflow.service.catalog_csv import decoded, read_catalog
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CatalogImportRefused, InvalidField, RowProblem
from tillflow.shop.sale import service as sale_service
from tillflow.shop.sale.catalog import Catalog
from tillflow.shop.sale.catalog_import import ImportCatalog, ImportPlan, decide_import
from tillflow.shop.sale.commands import AddProduct, DiscontinueProduct, RenameProduct
from tillflow.shop.sale.events import CATALOG_STREAM
from tillflow.shop.sale.gtin import check_digit
from tillflow.shop.sale.service import ImportOutcome, SaleService

PEN = "4006381333931"
SODA = "036000291452"
GUM = "73513537"


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store)
    service.add_product(AddProduct("pen", "Pen", 150, gtin=PEN))
    service.add_product(AddProduct("soda", "Soda", 99, gtin=SODA))
    return service


def _csv(text: str) -> ImportCatalog:
    return read_catalog(text.splitlines(keepends=True))


def _imported(sale: SaleService, text: str) -> ImportOutcome:
    return sale.import_catalog(_csv(text))


def _refused(sale: SaleService, text: str) -> list[tuple[int, str, object]]:
    with pytest.raises(CatalogImportRefused) as refused:
        _imported(sale, text)
    return [(p.line, p.field, p.value) for p in refused.value.problems]


def _types(store: EventStore, after: int) -> list[str]:
    return [event.type for event in store.read_stream(CATALOG_STREAM, after_version=after)]


def test_an_import_adds_updates_and_a_second_run_writes_nothing(
    store: EventStore, sale: SaleService
) -> None:
    text = (
        "product_id,name,price,gtin\n"
        f"pen,Pen,175,{PEN}\n"  # repriced
        "soda,Cola,99,\n"  # renamed, GTIN removed
        f"gum,Gum,50,{GUM}\n"  # added
    )
    outcome = _imported(sale, text)
    assert (outcome.plan.added, outcome.plan.renamed, outcome.plan.repriced) == (1, 1, 1)
    assert (outcome.plan.gtins_changed, outcome.plan.unchanged) == (1, 0)
    assert outcome.receipt is not None
    assert outcome.receipt.streams == {CATALOG_STREAM: 6}
    assert _types(store, 2) == [
        "ProductRepriced",
        "ProductRenamed",
        "ProductGtinChanged",
        "ProductAdded",
    ]
    catalog = sale.catalog()
    assert catalog.products["soda"].name == "Cola"
    assert catalog.products["soda"].gtin is None
    assert catalog.gtins == {"04006381333931": "pen", "00000073513537": "gum"}

    again = _imported(sale, text)
    assert again.receipt is None
    assert (again.plan.events, again.plan.unchanged, again.version) == ([], 3, 6)
    assert store.stream_version(CATALOG_STREAM) == 6


def test_without_a_gtin_column_gtins_stay_and_unnamed_products_are_left_alone(
    sale: SaleService,
) -> None:
    outcome = _imported(sale, "name,price,product_id\nPen,150,pen\n")
    assert outcome.receipt is None
    assert sale.catalog().products["pen"].gtin == "04006381333931"
    assert "soda" in sale.catalog().products


def test_a_tax_rate_column_sets_new_products_rates_and_moves_existing_ones(
    store: EventStore, sale: SaleService
) -> None:
    before = store.stream_version(CATALOG_STREAM)
    text = (
        "product_id,name,price,tax_rate\npen,Pen,150,reduced\ngum,Gum,50,\nsoda,Soda,99,standard\n"
    )
    outcome = _imported(sale, text)
    assert (outcome.plan.added, outcome.plan.retaxed, outcome.plan.unchanged) == (1, 1, 1)
    assert _types(store, before) == ["ProductTaxRateChanged", "ProductAdded"]
    products = sale.catalog().products
    assert (products["pen"].tax_rate, products["gum"].tax_rate) == ("reduced", "standard")
    assert _imported(sale, text).receipt is None
    assert _refused(sale, "product_id,name,price,tax_rate\npen,Pen,150,luxury\n") == [
        (2, "tax_rate", "luxury")
    ]


def test_two_products_may_swap_gtins_in_one_import(sale: SaleService) -> None:
    _imported(sale, f"product_id,name,price,gtin\npen,Pen,150,{SODA}\nsoda,Soda,99,{PEN}\n")
    assert sale.catalog().gtins == {"00036000291452": "pen", "04006381333931": "soda"}
    fresh = Catalog().refresh(sale.store)  # the fold from the log agrees
    assert fresh.gtins == sale.catalog().gtins


def test_every_bad_row_field_is_named_by_line_and_nothing_is_written(
    store: EventStore, sale: SaleService
) -> None:
    text = (
        "product_id,name,price,gtin\n"
        "gum,Gum,50,73513538\n"  # 2: check digit
        "tea,Tea,1.20,\n"  # 3: price not in cents
        "\n"  # 4: blank, skipped
        "bad id,,-1,\n"  # 5: id, name, price
        "ink,Ink,300\n"  # 6: one cell short
        f"cola,Cola,120,0{SODA}\n"  # 7: soda's GTIN
        "tea,Green tea,100,\n"  # 8: tea again
        f"mint,Mint,80,{GUM}\n"  # 9: fine
        f"chew,Chew,80,{GUM}\n"  # 10: gum's GTIN in this file
    )
    before = store.stream_version(CATALOG_STREAM)
    assert _refused(sale, text) == [
        (2, "gtin", "73513538"),
        (3, "price", "1.20"),
        (5, "product_id", "bad id"),
        (5, "name", ""),
        (5, "price", "-1"),
        (6, "row", 3),
        (7, "gtin", f"0{SODA}"),
        (8, "product_id", "tea"),
        (10, "gtin", GUM),
    ]
    with pytest.raises(CatalogImportRefused) as refused:
        _imported(sale, text)
    assert refused.value.problems[-1].reason == "also given on line 9"
    assert store.stream_version(CATALOG_STREAM) == before


def test_the_refusal_says_why_for_each_field(sale: SaleService) -> None:
    with pytest.raises(CatalogImportRefused) as refused:
        _imported(sale, f"product_id,name,price,gtin\ncola,Cola,1,{SODA}\ncola,C,1,\n")
    assert [problem.reason for problem in refused.value.problems] == [
        "product 'soda' carries this GTIN",
        "given twice (first on line 2)",
    ]
    assert str(refused.value).startswith("2 bad row field(s), nothing imported: line 2: gtin=")


def test_a_change_to_a_discontinued_product_is_a_bad_row(sale: SaleService) -> None:
    sale.discontinue_product(DiscontinueProduct("soda"))
    assert _imported(sale, "product_id,name,price\nsoda,Soda,99\n").receipt is None
    assert _refused(sale, "product_id,name,price\nsoda,Soda,100\n") == [(2, "product_id", "soda")]


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("", [RowProblem(1, "file", "", "empty: no header row")]),
        ("product_id,name,price\n", [RowProblem(1, "file", "", "no rows below the header")]),
        (
            "product_id,title,price,price\n",
            [
                RowProblem(
                    1,
                    "header",
                    "title",
                    "unknown column (known: product_id, name, price, gtin, tax_rate)",
                ),
                RowProblem(1, "header", "price", "column given twice"),
                RowProblem(1, "header", "name", "required column missing"),
            ],
        ),
    ],
)
def test_a_file_without_a_usable_header_is_refused_at_once(
    text: str, problems: list[RowProblem]
) -> None:
    with pytest.raises(CatalogImportRefused) as refused:
        _csv(text)
    assert list(refused.value.problems) == problems


def test_a_file_whose_every_row_is_unreadable_names_each_line(sale: SaleService) -> None:
    assert _refused(sale, "product_id,name,price\ntea,Tea\nmint,Mint,1,2\n") == [
        (2, "row", 2),
        (3, "row", 4),
    ]


def test_rows_that_are_no_list_are_refused_naming_rows(sale: SaleService) -> None:
    with pytest.raises(InvalidField) as refused:
        sale.import_catalog(ImportCatalog(5))  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.value) == ("rows", 5)
    with pytest.raises(InvalidField) as empty:
        sale.import_catalog(ImportCatalog([]))
    assert (empty.value.field, empty.value.reason) == ("rows", "no rows to import")


def test_a_file_that_is_not_utf_8_is_refused_naming_the_line() -> None:
    data = b"product_id,name,price\napple,Apple,1\n" + "pear,Poire\xe9,2\n".encode("latin-1")
    with pytest.raises(CatalogImportRefused) as refused:
        read_catalog(decoded(data.splitlines(keepends=True)))
    assert [(p.line, p.field, p.reason) for p in refused.value.problems] == [
        (3, "file", "not UTF-8")
    ]


def test_a_byte_order_mark_and_quoted_cells_over_two_lines_are_read() -> None:
    data = '\ufeffproduct_id,name,price\n"tea","Tea,\ngreen",1\nmint,Mint,2\n'.encode()
    command = read_catalog(decoded(data.splitlines(keepends=True)))
    assert [(row.line, row.name) for row in command.rows] == [(2, "Tea,\ngreen"), (4, "Mint")]


def test_a_catalog_change_between_check_and_append_is_a_conflict_writing_nothing(
    store: EventStore, sale: SaleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raced(catalog: Catalog, command: ImportCatalog) -> ImportPlan:
        plan = decide_import(catalog, command)
        SaleService(store).rename_product(RenameProduct("pen", "Ballpoint"))
        return plan

    monkeypatch.setattr(sale_service, "decide_import", raced)
    before = store.stream_version(CATALOG_STREAM)
    with pytest.raises(ConcurrencyConflict):
        _imported(sale, "product_id,name,price\ngum,Gum,50\ntea,Tea,60\n")
    assert _types(store, before) == ["ProductRenamed"]


def test_ten_thousand_rows_import_in_one_append(store: EventStore, sale: SaleService) -> None:
    lines = ["product_id,name,price,gtin\n"]
    for number in range(10_000):
        body = f"{200_000_000_000 + number:012d}"
        lines.append(f"p-{number},Product {number},{100 + number},{body}{check_digit(body)}\n")
    started = time.monotonic()
    outcome = sale.import_catalog(read_catalog(lines))
    assert outcome.plan.added == 10_000
    assert store.stream_version(CATALOG_STREAM) == 2 + 10_000
    assert len(sale.catalog().gtins) == 2 + 10_000
    again = sale.import_catalog(read_catalog(lines))
    assert again.receipt is None
    assert time.monotonic() - started < 60  # seconds on a busy 2-core machine
