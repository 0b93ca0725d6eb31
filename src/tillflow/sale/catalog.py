"""The catalog as Sale sees it: products, names, prices; rebuilt from the ``catalog`` stream."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from tillflow.engine import EventStore, RecordedEvent
from tillflow.sale.events import (
    CATALOG_STREAM,
    ProductAdded,
    ProductDiscontinued,
    ProductRenamed,
    ProductRepriced,
)


class Product(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    price: int
    discontinued: bool = False


@dataclass
class Catalog:
    """Products by id, as of ``version`` of the catalog stream."""

    version: int = 0
    products: dict[str, Product] = field(default_factory=dict)
    looked_at: float = -1e9

    def apply(self, event: RecordedEvent) -> None:
        """Fold one catalog event in (events must come in version order)."""
        if event.type == "ProductAdded":
            added = event.decode(ProductAdded)
            self.products[added.product_id] = Product(added.product_id, added.name, added.price)
        elif event.type == "ProductRenamed":
            renamed = event.decode(ProductRenamed)
            product = self.products[renamed.product_id]
            self.products[renamed.product_id] = msgspec.structs.replace(product, name=renamed.name)
        elif event.type == "ProductRepriced":
            repriced = event.decode(ProductRepriced)
            product = self.products[repriced.product_id]
            self.products[repriced.product_id] = msgspec.structs.replace(
                product, price=repriced.price
            )
        elif event.type == "ProductDiscontinued":
            gone = event.decode(ProductDiscontinued)
            product = self.products[gone.product_id]
            self.products[gone.product_id] = msgspec.structs.replace(product, discontinued=True)
        self.version = event.version

    def refresh(self, store: EventStore) -> Catalog:
        """Fold in whatever the catalog stream recorded since ``version``; one cheap query
        when nothing changed."""
        for event in store.read_stream(CATALOG_STREAM, after_version=self.version):
            self.apply(event)
        self.looked_at = time.monotonic()
        return self
