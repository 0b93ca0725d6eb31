"""The catalog as Sale sees it: products, names, prices, tax rates; rebuilt from the
``catalog`` stream."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from tillflow.engine import EventStore, RecordedEvent
from tillflow.shop.sale.events import (
    CATALOG_STREAM,
    ProductAdded,
    ProductDiscontinued,
    ProductGtinChanged,
    ProductRenamed,
    ProductRepriced,
    ProductTaxRateChanged,
    TaxRateDefined,
)
from tillflow.shop.sale.vat import DEFAULT_RATE, DEFAULT_RATES


class Product(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    price: int
    discontinued: bool = False
    gtin: str | None = None
    tax_rate: str = DEFAULT_RATE


@dataclass(frozen=True)
class Catalog:
    """Products by id, as of ``version`` of the catalog stream, read from the store at
    ``looked_at`` (``time.monotonic()`` when the read began); ``gtins``: the product id
    carrying each GTIN (14-digit form; discontinued products keep theirs); ``rates``: the
    shop's rate table, basis points by rate name (:data:`~tillflow.shop.sale.vat.DEFAULT_RATES`
    until a manager defines rates).

    A value: nothing changes it after it is made (``products`` is never written to), so a
    decision that holds one catalog prices every line from one state the stream really had,
    whatever other threads refresh meanwhile. :meth:`refresh` makes a new one."""

    version: int = 0
    products: Mapping[str, Product] = field(default_factory=dict)
    looked_at: float = -1e9
    gtins: Mapping[str, str] = field(default_factory=dict)
    rates: Mapping[str, int] = field(default_factory=lambda: DEFAULT_RATES)

    def refresh(self, store: EventStore) -> Catalog:
        """A new catalog: this one with whatever the catalog stream recorded since ``version``
        folded in; one cheap query when nothing changed (the products are then shared).
        Blocks for that query; ``self`` is left as it was."""
        looked_at = time.monotonic()
        events = store.read_stream(CATALOG_STREAM, after_version=self.version)
        if not events:
            return Catalog(self.version, self.products, looked_at, self.gtins, self.rates)
        products = dict(self.products)
        gtins = dict(self.gtins)
        rates = dict(self.rates)
        for event in events:
            if event.type == "TaxRateDefined":
                defined = event.decode(TaxRateDefined)
                rates[defined.rate] = defined.basis_points
            else:
                _fold(products, gtins, event)
        return Catalog(events[-1].version, products, looked_at, gtins, rates)


def _fold(products: dict[str, Product], gtins: dict[str, str], event: RecordedEvent) -> None:
    """Fold one catalog event into ``products`` and ``gtins`` (events in version order)."""
    if event.type == "ProductAdded":
        added = event.decode(ProductAdded)
        products[added.product_id] = Product(
            added.product_id, added.name, added.price, gtin=added.gtin, tax_rate=added.tax_rate
        )
        if added.gtin is not None:
            gtins[added.gtin] = added.product_id
    elif event.type == "ProductRenamed":
        renamed = event.decode(ProductRenamed)
        product = products[renamed.product_id]
        products[renamed.product_id] = msgspec.structs.replace(product, name=renamed.name)
    elif event.type == "ProductRepriced":
        repriced = event.decode(ProductRepriced)
        product = products[repriced.product_id]
        products[repriced.product_id] = msgspec.structs.replace(product, price=repriced.price)
    elif event.type == "ProductDiscontinued":
        gone = event.decode(ProductDiscontinued)
        product = products[gone.product_id]
        products[gone.product_id] = msgspec.structs.replace(product, discontinued=True)
    elif event.type == "ProductTaxRateChanged":
        retaxed = event.decode(ProductTaxRateChanged)
        product = products[retaxed.product_id]
        products[retaxed.product_id] = msgspec.structs.replace(product, tax_rate=retaxed.tax_rate)
    elif event.type == "ProductGtinChanged":
        changed = event.decode(ProductGtinChanged)
        product = products[changed.product_id]
        if product.gtin is not None and gtins.get(product.gtin) == product.product_id:
            del gtins[product.gtin]  # unless another product took it in the same import
        if changed.gtin is not None:
            gtins[changed.gtin] = changed.product_id
        products[changed.product_id] = msgspec.structs.replace(product, gtin=changed.gtin)
