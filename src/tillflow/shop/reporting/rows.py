"""What the report holds: a row per product and the totals, each stamped *as of* what it
reflects. Stored as view rows, committed with the reporting processor's checkpoint."""

from __future__ import annotations

from typing import Final

import msgspec

PRODUCTS_VIEW: Final = "report.products"
TOTALS_VIEW: Final = "report.totals"
TOTALS_KEY: Final = "all"


class AsOf(msgspec.Struct):
    """The log position (lane, position) and commit time of the last event a figure
    reflects; for a product row also ``version``, Inventory's version of the product."""

    lane: int = 0
    position: int = 0
    at: float = 0.0
    version: int = 0


class ProductRow(msgspec.Struct):
    """One product. Every stock figure and every sales figure comes from Inventory's events
    of the product up to ``as_of.version``: they describe the same moment."""

    product_id: str
    name: str = ""
    price: int = 0
    discontinued: bool = False
    units_sold: int = 0
    units_returned: int = 0
    revenue: int = 0
    received: int = 0
    count_adjustments: int = 0
    stock_left: int = 0
    open_shortfall: int = 0
    units_oversold: int = 0
    as_of: AsOf = msgspec.field(default_factory=AsOf)
    reorder_point: int = 0
    """Inventory's reorder point (``0``: none); the row is low while ``stock_left`` is below."""
    low_since: AsOf | None = None
    """While low: the ``LowStock`` alert that opened the episode."""
    low_alerts: int = 0
    """``LowStock`` alerts recorded for the product, ever."""


class Totals(msgspec.Struct):
    """The whole shop: net revenue (sales − refunds), checkouts and returns handled, units."""

    revenue: int = 0
    checkouts: int = 0
    returns: int = 0
    units_sold: int = 0
    units_returned: int = 0
    as_of: AsOf = msgspec.field(default_factory=AsOf)
