"""Properties of catalog imports (hypothesis): an import is refused exactly when the catalog
it would leave behind gives one GTIN to two products; an accepted one leaves the catalog —
folded again from the log — saying what the rows say, its GTIN index one-to-one with the
products' GTINs, and the same rows again write nothing."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tillflow.engine import MemoryEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CatalogImportRefused
from tillflow.shop.sale.catalog import Catalog
from tillflow.shop.sale.catalog_import import CatalogRow, ImportCatalog
from tillflow.shop.sale.commands import AddProduct
from tillflow.shop.sale.events import CATALOG_STREAM
from tillflow.shop.sale.gtin import check_digit
from tillflow.shop.sale.service import SaleService

PRODUCTS = [f"p{number}" for number in range(5)]
POOL = [f"{body}{check_digit(body)}" for body in (f"{50_000_000 + n:012d}" for n in range(4))]
"""Four UPC-As: few enough that products often want the same one."""

Gtin = str | msgspec.UnsetType | None
gtins = st.sampled_from([*POOL, None])
row_gtins = st.sampled_from([*POOL, None, msgspec.UNSET])


@st.composite
def setups(draw: st.DrawFn) -> tuple[dict[str, str | None], dict[str, Gtin]]:
    """A catalog (product → GTIN, each GTIN on one product at most) and an import's rows
    (product → the GTIN its row gives; new products among them)."""
    start: dict[str, str | None] = {}
    for product_id in draw(st.lists(st.sampled_from(PRODUCTS), unique=True)):
        gtin = draw(gtins)
        start[product_id] = None if gtin in start.values() else gtin
    rows = draw(st.dictionaries(st.sampled_from(PRODUCTS), row_gtins, min_size=1))
    return start, rows


def _after(start: dict[str, str | None], rows: dict[str, Gtin]) -> dict[str, str | None]:
    """Each product's GTIN once the rows are imported."""
    after = dict(start)
    for product_id, gtin in rows.items():
        if isinstance(gtin, msgspec.UnsetType):
            after.setdefault(product_id, None)
        else:
            after[product_id] = gtin
    return after


@settings(max_examples=300, deadline=None)
@given(setup=setups())
def test_an_import_is_refused_exactly_when_a_gtin_would_be_on_two_products(
    setup: tuple[dict[str, str | None], dict[str, Gtin]],
) -> None:
    start, rows = setup
    store = MemoryEventStore(registry=REGISTRY)
    sale = SaleService(store)
    for product_id, gtin in start.items():
        sale.add_product(AddProduct(product_id, product_id, 100, gtin=gtin))
    command = ImportCatalog(
        [
            CatalogRow(line, product_id, product_id, 100, gtin)
            for line, (product_id, gtin) in enumerate(rows.items(), start=2)
        ]
    )
    after = _after(start, rows)
    given_twice = [g for g in after.values() if g is not None and list(after.values()).count(g) > 1]
    before = store.stream_version(CATALOG_STREAM)
    try:
        sale.import_catalog(command)
    except CatalogImportRefused as refused:
        assert given_twice, f"refused a catalog that is fine: {refused}"
        assert {problem.field for problem in refused.problems} == {"gtin"}
        assert store.stream_version(CATALOG_STREAM) == before
        return
    assert not given_twice, f"accepted a GTIN on two products: {after}"
    folded = Catalog().refresh(store)
    assert {p: product.gtin for p, product in folded.products.items()} == {
        p: None if g is None else g.zfill(14) for p, g in after.items()
    }
    assert folded.gtins == {
        product.gtin: p for p, product in folded.products.items() if product.gtin is not None
    }
    assert sale.import_catalog(command).receipt is None
