"""VAT: the shop's one rounding rule, in integer cents. Pure functions, no state.

Shelf prices include tax (as in European retail). A rate is named (``standard``) and has a
size in basis points (2000 = 20 %); the catalog holds the table (see
:class:`~tillflow.shop.sale.catalog.Catalog`). For every line of a checkout:

* ``gross = unit_price × quantity`` — what the customer pays for the line;
* ``tax = round_half_even(gross × bp / (10,000 + bp))`` — the tax inside the gross;
* ``net = gross − tax``.

So ``net + tax = gross`` on every line, and the lines' gross adds up to what was paid.
Rounding is per line, half to even (banker's rounding: no drift up or down over many lines).

A return refunds the original line's tax *in proportion to the units*, rounded on the
running total: after ``k`` of the line's ``n`` units came back, ``round_half_even(tax × k / n)``
has been refunded. Each return refunds the difference, so returns in any pieces refund
exactly the line's tax once every unit is back — never more than was collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

WHOLE: Final = 10_000
"""Basis points in 100 %."""
MAX_BASIS_POINTS: Final = WHOLE
"""The largest rate the shop accepts: 100 % (tax at most half of a tax-inclusive price)."""
DEFAULT_RATE: Final = "standard"
"""The rate of a product added without naming one (and of products added before VAT)."""
DEFAULT_RATES: Final[Mapping[str, int]] = MappingProxyType(
    {"standard": 2000, "reduced": 500, "zero": 0}
)
"""The rate table of a new shop (basis points); a manager may redefine or add rates."""
BEFORE_VAT: Final = ""
"""The rate name on a line recorded before the shop kept VAT: no tax in it (net = gross)."""


def round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, a half to the even one.
    Both must be ``>= 0`` and ``denominator > 0``."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        return quotient + 1
    return quotient


def tax_in(gross: int, basis_points: int) -> int:
    """The tax included in ``gross`` cents at ``basis_points`` (``0 <= tax <= gross``)."""
    return round_half_even(gross * basis_points, WHOLE + basis_points)


def tax_refunded(line_tax: int, line_quantity: int, returned_before: int, returning: int) -> int:
    """The tax refunded when ``returning`` units of a line (``line_quantity`` units bought,
    ``line_tax`` tax collected) come back after ``returned_before`` units came back earlier.
    The running total ``round_half_even(line_tax × returned / line_quantity)`` is what has
    been refunded; this is its step. Needs ``returned_before + returning <= line_quantity``."""
    after = round_half_even(line_tax * (returned_before + returning), line_quantity)
    return after - round_half_even(line_tax * returned_before, line_quantity)
