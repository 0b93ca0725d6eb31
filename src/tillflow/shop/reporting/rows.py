"""What the report holds: a row per product and the totals, each stamped *as of* what it
reflects. Stored as view rows, committed with the reporting processor's checkpoint."""

from __future__ import annotations

from typing import Final

import msgspec

from tillflow.shop.sale.vat import BEFORE_VAT, DEFAULT_RATE

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
    tax_rate: str = DEFAULT_RATE
    discontinued: bool = False
    units_sold: int = 0
    units_returned: int = 0
    revenue: int = 0
    tax: int = 0
    """The tax inside ``revenue`` (sales' tax − tax refunded); net revenue is the rest."""
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


class RateTotals(msgspec.Struct):
    """What was sold at one rate of the table, net of refunds: ``revenue`` as paid (tax
    included), the ``tax`` in it and the ``net`` rest. A rate resized gets an entry per size;
    rate ``""`` (:data:`~tillflow.shop.sale.vat.BEFORE_VAT`) holds sales from before VAT."""

    rate: str
    basis_points: int
    revenue: int = 0
    tax: int = 0
    net: int = 0


class Totals(msgspec.Struct):
    """The whole shop: revenue (sales − refunds, tax included), the tax in it, by rate;
    checkouts and returns handled, units. ``by_rate`` adds up to ``revenue`` and ``tax``."""

    revenue: int = 0
    tax: int = 0
    checkouts: int = 0
    returns: int = 0
    units_sold: int = 0
    units_returned: int = 0
    by_rate: list[RateTotals] = msgspec.field(default_factory=list)
    as_of: AsOf = msgspec.field(default_factory=AsOf)

    def __post_init__(self) -> None:
        if self.revenue and not self.by_rate:  # totals kept before VAT: all untaxed
            self.by_rate.append(RateTotals(BEFORE_VAT, 0, self.revenue, 0, self.revenue))

    def sold(self, revenue: int, tax: int, rate: str, basis_points: int) -> None:
        """Count ``revenue`` (negative for a refund) with ``tax`` in it, at ``rate`` of
        ``basis_points``, in ``revenue``, ``tax`` and ``by_rate`` (kept in rate order)."""
        self.revenue += revenue
        self.tax += tax
        for entry in self.by_rate:
            if entry.rate == rate and entry.basis_points == basis_points:
                break
        else:
            entry = RateTotals(rate, basis_points)
            self.by_rate.append(entry)
            self.by_rate.sort(key=lambda known: (known.rate, known.basis_points))
        entry.revenue += revenue
        entry.tax += tax
        entry.net += revenue - tax
