"""The point-of-sale workload every contender runs, and the one truth they are all checked
against.

The workload is :mod:`bench.shop`'s: the seeded catalog (200 products, prices in cents),
:data:`~bench.shop.STARTING_STOCK` units of each delivered before the clock starts, and
checkout *i* ringing up basket ``i % BASKETS`` of the seeded pool (1–5 lines of distinct
products, 1–3 units each). Every contender — tillflow, the ``eventsourcing`` library, the
bare loops — takes the same baskets in the same order, so they must all end with the same
report.

The truth is computed here from the catalog and the baskets alone (how many times each
basket was rung up, times what it holds), never from anything a contender recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from bench.shop import BASKETS, STARTING_STOCK, Basket, baskets, catalogue
from tillflow.shop.sale.commands import AddProduct

SEED: Final = 1


@dataclass(frozen=True)
class Line:
    """A priced line, as every contender's Sale records it."""

    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


@dataclass(frozen=True)
class Workload:
    """The catalog and the basket pool of one seed (built once per process)."""

    products: list[AddProduct]
    baskets: list[Basket]
    lines: list[list[Line]]
    """Each basket's lines, priced from the catalog."""
    asked: list[list[tuple[str, int]]]
    """Each basket as a till asks for it: (product, quantity) per line."""

    def basket(self, number: int) -> list[Line]:
        """Checkout ``number``'s lines."""
        return self.lines[number % BASKETS]

    def requests(self, number: int) -> list[tuple[str, int]]:
        """Checkout ``number`` as a till asks for it (shared: do not modify)."""
        return self.asked[number % BASKETS]

    @property
    def prices(self) -> dict[str, int]:
        return {product.product_id: product.price for product in self.products}

    @property
    def events_per_checkout(self) -> float:
        """Events a checkout adds to tillflow's log: ``CheckedOut`` and one ``ProductTaken``
        per line (the mean over the pool)."""
        return 1 + sum(len(lines) for lines in self.lines) / len(self.lines)


@cache
def workload(seed: int = SEED) -> Workload:
    products = catalogue(seed)
    drawn = baskets(seed, products)
    lines = [
        [
            Line(line.product_id, line.name, line.quantity, line.unit_price, line.line_total)
            for line in basket.recorded.lines
        ]
        for basket in drawn
    ]
    asked = [[(line.product_id, line.quantity) for line in basket] for basket in lines]
    return Workload(products, drawn, lines, asked)


@dataclass(frozen=True)
class ProductFigures:
    sold: int = 0
    revenue: int = 0
    stock_left: int = 0


@dataclass
class PosReport:
    """A contender's final report, in one shape for all: per product the units sold, the
    revenue (cents) and the stock left; the checkouts and the revenue in all."""

    products: dict[str, ProductFigures] = field(default_factory=dict)
    checkouts: int = 0
    revenue: int = 0

    def as_data(self) -> dict[str, Any]:
        return {
            "products": {
                product_id: [figures.sold, figures.revenue, figures.stock_left]
                for product_id, figures in self.products.items()
            },
            "checkouts": self.checkouts,
            "revenue": self.revenue,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PosReport:
        return cls(
            {
                product_id: ProductFigures(*figures)
                for product_id, figures in data["products"].items()
            },
            data["checkouts"],
            data["revenue"],
        )


def truth(checkouts: int, seed: int = SEED) -> PosReport:
    """What every report must show after ``checkouts`` checkouts of the workload."""
    pool = workload(seed)
    rounds, rest = divmod(checkouts, BASKETS)
    sold = {product.product_id: 0 for product in pool.products}
    revenue = dict.fromkeys(sold, 0)
    for number, lines in enumerate(pool.lines):
        times = rounds + (1 if number < rest else 0)
        for line in lines:
            sold[line.product_id] += line.quantity * times
            revenue[line.product_id] += line.line_total * times
    return PosReport(
        {
            product_id: ProductFigures(units, revenue[product_id], STARTING_STOCK - units)
            for product_id, units in sold.items()
        },
        checkouts,
        sum(revenue.values()),
    )


def violations(report: PosReport, expected: PosReport, limit: int = 3) -> list[str]:
    """Every figure of ``report`` that differs from ``expected`` (the first few, and how
    many in all)."""
    found: list[str] = []
    for product_id, want in expected.products.items():
        shown = report.products.get(product_id)
        if shown is None:
            found.append(f"{product_id}: missing from the report")
        elif shown != want:
            found.append(f"{product_id}: shows {shown}, truth is {want}")
    found += [
        f"{product_id}: not in the catalog"
        for product_id in report.products
        if product_id not in expected.products
    ]
    for name, shown_total, want_total in (
        ("checkouts", report.checkouts, expected.checkouts),
        ("revenue", report.revenue, expected.revenue),
    ):
        if shown_total != want_total:
            found.append(f"totals: {name} shows {shown_total}, truth is {want_total}")
    if len(found) > limit:
        return [*found[:limit], f"… {len(found)} differences in all"]
    return found
