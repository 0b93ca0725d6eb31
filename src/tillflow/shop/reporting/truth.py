"""The truth, computed independently of every processor from the commands issued.

Sales, returns and deliveries are plain sums. A stock count sets a product's level as of
what Inventory had handled when the count was taken (its durable checkpoint then): the
checkouts and returns at positions up to that checkpoint are inside the counted level; the
ones after it still move the stock afterwards.

Tax is computed here from each line's gross and rate by :mod:`tillflow.shop.sale.vat`'s rule
(a line whose recorded tax or net disagrees is a violation), a return's from the bought line.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tillflow.engine import Receipt
from tillflow.shop.reporting.rows import ProductRow, Totals
from tillflow.shop.sale.events import CheckedOut, CheckoutLine, ItemsReturned
from tillflow.shop.sale.vat import tax_in, tax_refunded


def expected_line(
    product_id: str, name: str, unit_price: int, quantity: int, rate: str, basis_points: int
) -> CheckoutLine:
    """The line Sale must record for ``quantity`` units at ``unit_price`` (tax included) and
    ``rate`` of ``basis_points``: for a truth computed from the commands a till issued."""
    gross = unit_price * quantity
    tax = tax_in(gross, basis_points)
    return CheckoutLine(
        product_id,
        name,
        quantity,
        unit_price,
        gross,
        tax_rate=rate,
        basis_points=basis_points,
        tax=tax,
        net=gross - tax,
    )


@dataclass
class _Product:
    sold: int = 0
    returned: int = 0
    revenue: int = 0
    tax: int = 0
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
    by_rate: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """(rate, basis points) → [revenue, tax]."""
    bought: dict[tuple[str, str], tuple[CheckoutLine, list[int]]] = field(default_factory=dict)
    """(checkout id, product id) → the line and [units returned so far]."""
    line_problems: list[str] = field(default_factory=list)

    def _taxed(self, line: CheckoutLine, times: int) -> int:
        """The line's tax by the rule, counted ``times`` over (a problem if recorded wrong)."""
        tax = tax_in(line.line_total, line.basis_points)
        if (line.tax, line.net) != (tax, line.line_total - tax):
            self.line_problems.append(
                f"line of {line.quantity} {line.product_id} at {line.basis_points} bp: tax "
                f"{line.tax} and net {line.net}; the rule says {tax} of {line.line_total}"
            )
        self._count(line.tax_rate, line.basis_points, line.line_total * times, tax * times)
        return tax * times

    def _count(self, rate: str, basis_points: int, revenue: int, tax: int) -> None:
        figures = self.by_rate.setdefault((rate, basis_points), [0, 0])
        figures[0] += revenue
        figures[1] += tax

    def checked_out(self, checked_out: CheckedOut, receipt: Receipt) -> None:
        [(lane, position)] = receipt.positions.items()
        self.checkouts += 1
        for line in checked_out.lines:
            product = self.products[line.product_id]
            product.sold += line.quantity
            product.revenue += line.line_total
            product.tax += self._taxed(line, 1)
            product.movements.append((lane, position, -line.quantity))
            self.bought[(checked_out.checkout_id, line.product_id)] = (line, [0])

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
            product.tax += self._taxed(line, times)
            product.movements.append((lane, position, -line.quantity * times))

    def returned(self, returned: ItemsReturned, receipt: Receipt) -> None:
        [(lane, position)] = receipt.positions.items()
        self.returns += 1
        for line in returned.lines:
            product = self.products[line.product_id]
            product.returned += line.quantity
            product.revenue -= line.refund
            sold, units_back = self.bought[(returned.checkout_id, line.product_id)]
            tax = tax_refunded(sold.tax, sold.quantity, units_back[0], line.quantity)
            units_back[0] += line.quantity
            product.tax -= tax
            self._count(sold.tax_rate, sold.basis_points, -line.refund, -tax)
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
                ("tax", row.tax, product.tax),
                ("received", row.received, product.received),
                ("stock left", row.stock_left, product.stock()),
                ("open shortfall", row.open_shortfall, max(0, -product.stock())),
            ):
                if shown != truth:
                    found.append(f"{product_id}: {name} shows {shown}, truth is {truth}")
        revenue = sum(product.revenue for product in self.products.values())
        tax = sum(product.tax for product in self.products.values())
        for name, shown, truth in (
            ("checkouts", totals.checkouts, self.checkouts),
            ("returns", totals.returns, self.returns),
            ("revenue", totals.revenue, revenue),
            ("tax", totals.tax, tax),
        ):
            if shown != truth:
                found.append(f"totals: {name} shows {shown}, truth is {truth}")
        shown_rates = {
            (entry.rate, entry.basis_points): [entry.revenue, entry.tax] for entry in totals.by_rate
        }
        for key in sorted(shown_rates.keys() | self.by_rate.keys()):
            shown_rate, true_rate = shown_rates.get(key, [0, 0]), self.by_rate.get(key, [0, 0])
            if shown_rate != true_rate:
                found.append(
                    f"totals: rate {key[0]!r} at {key[1]} bp shows revenue, tax {shown_rate}, "
                    f"truth is {true_rate}"
                )
        return found + self.line_problems
