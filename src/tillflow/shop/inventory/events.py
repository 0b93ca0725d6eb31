"""Inventory's events, one stream per product (``stock-<product id>``). Every one carries the
stock level after it, the units still short after it and the reorder point in force after it
(``0``: none), so a reader never does arithmetic: the stream's versions are Inventory's order
of changes for the product."""

from __future__ import annotations

import msgspec

from tillflow.shop.sale.vat import BEFORE_VAT


def stock_stream(product_id: str) -> str:
    return f"stock-{product_id}"


STOCK_STREAM_PREFIX = "stock-"


class StockReceived(msgspec.Struct, frozen=True):
    """A delivery put on the shelf."""

    product_id: str
    quantity: int
    stock_after: int
    short_after: int
    delivery_id: str | None = None
    reorder_point: int = 0


class StockCounted(msgspec.Struct, frozen=True):
    """A stock-take set the level; ``difference`` is what the count changed."""

    product_id: str
    counted: int
    difference: int
    stock_after: int
    short_after: int
    count_id: str | None = None
    reorder_point: int = 0


class ProductTaken(msgspec.Struct, frozen=True):
    """Line ``line`` of a checkout left the shelf (Inventory handling ``CheckedOut``)."""

    product_id: str
    checkout_id: str
    quantity: int
    unit_price: int
    line_total: int
    stock_after: int
    short_after: int
    line: int = 0
    reorder_point: int = 0
    tax: int = 0
    """The tax in ``line_total``, at ``tax_rate`` (:data:`BEFORE_VAT`: sold before VAT) of
    ``basis_points``: copied from the checkout's line."""
    tax_rate: str = BEFORE_VAT
    basis_points: int = 0


class ProductReturned(msgspec.Struct, frozen=True):
    """Returned units back on the shelf (Inventory handling ``ItemsReturned``)."""

    product_id: str
    checkout_id: str
    return_id: str
    quantity: int
    refund: int
    stock_after: int
    short_after: int
    line: int = 0
    reorder_point: int = 0
    tax: int = 0
    """The tax in ``refund``, at ``tax_rate`` of ``basis_points``: copied from the return."""
    tax_rate: str = BEFORE_VAT
    basis_points: int = 0


class StockShortfall(msgspec.Struct, frozen=True):
    """The apology: a sale took ``units_short`` units that were not on the shelf."""

    product_id: str
    checkout_id: str
    units_short: int
    stock_after: int
    short_after: int
    reorder_point: int = 0


class ShortfallResolved(msgspec.Struct, frozen=True):
    """A delivery, count or return brought the stock back to zero or more."""

    product_id: str
    by: str
    stock_after: int
    short_after: int
    reorder_point: int = 0


class ReorderPointSet(msgspec.Struct, frozen=True):
    """A manager set the product's reorder point (``0``: none); ``previous`` was in force
    before."""

    product_id: str
    reorder_point: int
    previous: int
    stock_after: int
    short_after: int
    change_id: str | None = None


class LowStock(msgspec.Struct, frozen=True):
    """The alert: the stock fell below the reorder point, ``by`` a ``sale`` (the checkout
    ``checkout_id``), a ``count`` or a raised ``reorder_point``. Recorded once per crossing,
    in the same append as the change that crossed: the next one only after the stock was back
    at or above the point (or the point was lowered or cleared) and fell below it again."""

    product_id: str
    by: str
    stock_after: int
    short_after: int
    reorder_point: int
    checkout_id: str | None = None


INVENTORY_EVENTS: dict[str, type] = {
    "StockReceived": StockReceived,
    "StockCounted": StockCounted,
    "ProductTaken": ProductTaken,
    "ProductReturned": ProductReturned,
    "StockShortfall": StockShortfall,
    "ShortfallResolved": ShortfallResolved,
    "ReorderPointSet": ReorderPointSet,
    "LowStock": LowStock,
}
