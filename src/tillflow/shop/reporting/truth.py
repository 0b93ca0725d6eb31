"""The truth, computed independently of every processor from the commands issued.

Sales, returns and deliveries are plain sums. A stock count sets a product's level as of
what Inventory had handled when the count was taken (its durable checkpoint then): the
checkouts and returns at positions up to that checkpoint are inside the counted level; the
ones after it still move the stock afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tillflow.engine import Receipt
from tillflow.shop.reporting.rows import ProductRow, Totals
from tillflow.shop.sale.events import CheckedOut, ItemsReturned


@dataclass
class _Product:
    sold: int = 0
    returned: int = 0
    revenue: int = 0
    received: int = 0
    level: int = 0  # stock as of the last count (or zero), plus deliveries since
    movements: list[tuple[int, int, int]] = field(default_factory=list)
    """(lane, position, delta) of checkouts and returns not yet inside a count."""

    def stock(self) -> int:
        return self.level + sum(delta for _, _, delta in self.movements)


@dataclass
class ShopTruth:
    """What every figure must be once the processors have caught up."""

    products: dict[str, _Product] = field(default_factory=lambda: defaultdict(_Product))
    checkouts: int = 0
    returns: int = 0

    def checked_out(self, checked_out: CheckedOut, receipt: Receipt) -> None:
        [(lane, position)] = receipt.positions.items()
        self.checkouts += 1
        for line in checked_out.lines:
            product = self.products[line.product_id]
            product.sold += line.quantity
            product.revenue += line.line_total
            product.movements.append((lane, position, -line.quantity))

    def checked_out_times(
        self, checked_out: CheckedOut, times: int, lane: int = 0, position: int = 0
    ) -> None:
        """``checked_out`` accepted ``times`` over (a workload repeating baskets), the last
        at ``position`` of ``lane`` (only a later stock count looks at it)."""
        if times <= 0:
            return
        self.checkouts += times
        for line in checked_out.lines:
            product = self.products[line.product_id]
            product.sold += line.quantity * times
            product.revenue += line.line_total * times
            product.movements.append((lane, position, -line.quantity * times))

    def returned(self, returned: ItemsReturned, receipt: Receipt) -> None:
        [(lane, position)] = receipt.positions.items()
        self.returns += 1
        for line in returned.lines:
            product = self.products[line.product_id]
            product.returned += line.quantity
            product.revenue -= line.refund
            product.movements.append((lane, position, line.quantity))

    def received(self, product_id: str, quantity: int) -> None:
        product = self.products[product_id]
        product.received += quantity
        product.level += quantity

    def counted(self, product_id: str, level: int, inventory_at: dict[int, int]) -> None:
        """A count of ``level`` taken when Inventory's checkpoints were ``inventory_at``."""
        product = self.products[product_id]
        product.level = level
        product.movements = [
            (lane, position, delta)
            for lane, position, delta in product.movements
            if position > inventory_at.get(lane, 0)
        ]

    def violations(self, rows: list[ProductRow], totals: Totals) -> list[str]:
        """Every figure against the truth (call once everything has caught up)."""
        found = []
        by_id = {row.product_id: row for row in rows}
        for product_id, product in self.products.items():
            row = by_id.get(product_id)
            if row is None:
                found.append(f"{product_id}: missing from the report")
                continue
            for name, shown, truth in (
                ("units sold", row.units_sold, product.sold),
                ("units returned", row.units_returned, product.returned),
                ("revenue", row.revenue, product.revenue),
                ("received", row.received, product.received),
                ("stock left", row.stock_left, product.stock()),
                ("open shortfall", row.open_shortfall, max(0, -product.stock())),
            ):
                if shown != truth:
                    found.append(f"{product_id}: {name} shows {shown}, truth is {truth}")
        revenue = sum(product.revenue for product in self.products.values())
        for name, shown, truth in (
            ("checkouts", totals.checkouts, self.checkouts),
            ("returns", totals.returns, self.returns),
            ("revenue", totals.revenue, revenue),
        ):
            if shown != truth:
                found.append(f"totals: {name} shows {shown}, truth is {truth}")
        return found
