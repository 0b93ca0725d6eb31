"""Inventory's events, one stream per product (``stock-<product id>``). Every one carries the
stock level after it and the units still short after it, so a reader never does arithmetic:
the stream's versions are Inventory's order of changes for the product."""

from __future__ import annotations

import msgspec


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


class StockCounted(msgspec.Struct, frozen=True):
    """A stock-take set the level; ``difference`` is what the count changed."""

    product_id: str
    counted: int
    difference: int
    stock_after: int
    short_after: int
    count_id: str | None = None


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


class StockShortfall(msgspec.Struct, frozen=True):
    """The apology: a sale took ``units_short`` units that were not on the shelf."""

    product_id: str
    checkout_id: str
    units_short: int
    stock_after: int
    short_after: int


class ShortfallResolved(msgspec.Struct, frozen=True):
    """A delivery, count or return brought the stock back to zero or more."""

    product_id: str
    by: str
    stock_after: int
    short_after: int


INVENTORY_EVENTS: dict[str, type] = {
    "StockReceived": StockReceived,
    "StockCounted": StockCounted,
    "ProductTaken": ProductTaken,
    "ProductReturned": ProductReturned,
    "StockShortfall": StockShortfall,
    "ShortfallResolved": ShortfallResolved,
}
