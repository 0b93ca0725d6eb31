"""The shop's rate table in Sale's decisions: which rate names and sizes are valid, and the
lines of a checkout or return taxed by :mod:`tillflow.shop.sale.vat`'s rule.

::

    DefineTaxRate ──► TaxRateDefined ──► Catalog.rates {name: basis points}
    AddProduct / ChangeProductTaxRate ──► product.tax_rate (a name in the table)
    Checkout ──► CheckoutLine(gross, tax_rate, basis_points, tax, net)
    ReturnItems ──► ReturnLine(refund, tax: the bought line's share)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from tillflow.shop import validation
from tillflow.shop.errors import UnknownTaxRate
from tillflow.shop.sale.catalog import Product
from tillflow.shop.sale.events import CheckoutLine, ReturnLine
from tillflow.shop.sale.vat import MAX_BASIS_POINTS, tax_in, tax_refunded


def rate_name(field: str, value: object, rates: Mapping[str, int]) -> str:
    """``value`` when it names a rate of ``rates``. Raises :class:`InvalidField` (not an
    identifier) or :class:`UnknownTaxRate` naming ``field`` and the value."""
    if type(value) is str and value in rates:
        return value
    name = validation.identifier(field, value)
    raise UnknownTaxRate(field, name, sorted(rates))


def basis_points(field: str, value: object) -> int:
    """A rate's size: a whole number of basis points, 0..10,000 (0 % to 100 %)."""
    return validation.whole_number(field, value, 0, MAX_BASIS_POINTS)


def sold_line(product: Product, quantity: int, rates: Mapping[str, int]) -> CheckoutLine:
    """``quantity`` units of ``product`` at its price, taxed at its rate in ``rates`` (a
    product's rate is always in the table: rates are never removed)."""
    gross = product.price * quantity
    points = rates[product.tax_rate]
    tax = tax_in(gross, points)
    return CheckoutLine(
        product.product_id,
        product.name,
        quantity,
        product.price,
        gross,
        gtin=product.gtin,
        tax_rate=product.tax_rate,
        basis_points=points,
        tax=tax,
        net=gross - tax,
    )


def returned_line(sold: CheckoutLine, quantity: int, returned_before: int) -> ReturnLine:
    """``quantity`` units of the bought line ``sold`` back, after ``returned_before`` came
    back earlier: refunded at the price paid, with the line's tax in proportion."""
    refund = sold.unit_price * quantity
    tax = tax_refunded(sold.tax, sold.quantity, returned_before, quantity)
    return ReturnLine(
        sold.product_id,
        sold.name,
        quantity,
        sold.unit_price,
        refund,
        tax=tax,
        tax_rate=sold.tax_rate,
        basis_points=sold.basis_points,
        net=refund - tax,
    )


class RateSummary(msgspec.Struct, frozen=True):
    """The lines of one rate (and size) together: what a receipt prints per rate."""

    rate: str
    basis_points: int
    net: int
    tax: int
    gross: int


def by_rate(lines: Iterable[CheckoutLine | ReturnLine]) -> list[RateSummary]:
    """The lines' net, tax and gross per rate and size, in rate order: they add up to the
    lines' (a checkout's total, or a return's refund)."""
    sums: dict[tuple[str, int], list[int]] = {}
    for line in lines:
        gross = line.line_total if isinstance(line, CheckoutLine) else line.refund
        figures = sums.setdefault((line.tax_rate, line.basis_points), [0, 0])
        figures[0] += line.tax
        figures[1] += gross
    return [
        RateSummary(rate, points, gross - tax, tax, gross)
        for (rate, points), (tax, gross) in sorted(sums.items())
    ]
