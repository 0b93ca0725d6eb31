"""GTINs (barcode numbers): EAN-13, UPC-A (12 digits), EAN-8, and GTIN-14, check digit checked.

Every kind is one number space once padded with leading zeros to 14 digits (the GS1 rule:
UPC-A ``036000291452`` and EAN-13 ``0036000291452`` name the same item). The shop keeps and
compares a GTIN in that 14-digit form, so a product added with its UPC-A is found when a
scanner reads the EAN-13 of the same label. Pure functions: no I/O, no state.
"""

from __future__ import annotations

from typing import Final

from tillflow.shop import validation
from tillflow.shop.errors import InvalidField

LENGTHS: Final = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13", 14: "GTIN-14"}
WIDTH: Final = 14


def check_digit(body: str) -> int:
    """The GS1 check digit of ``body`` (the digits before it): weights 3, 1, 3, … from the
    right, and the digit that brings the sum to a multiple of 10."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(body[::-1]))
    return -total % 10


def normalised(field: str, value: object) -> str:
    """``value`` as a 14-digit GTIN (leading zeros added). Accepts a string of 8, 12, 13 or
    14 ASCII digits whose last digit is its check digit, and not all zeros. Raises
    :class:`InvalidField` naming ``field`` and the value otherwise (a number is refused:
    its leading zeros would be lost)."""
    if not isinstance(value, str):
        raise validation.invalid(field, value, "must be a string of digits (a GTIN)")
    if not (value.isascii() and value.isdigit()):
        raise InvalidField(field, value, "a GTIN holds digits only")
    if len(value) not in LENGTHS:
        raise InvalidField(
            field, value, "must be 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14) digits"
        )
    if not value.strip("0"):
        raise InvalidField(field, value, "is all zeros, not a GTIN")
    expected = check_digit(value[:-1])
    if int(value[-1]) != expected:
        kind = LENGTHS[len(value)]
        raise InvalidField(field, value, f"wrong {kind} check digit: expected {expected}")
    return value.zfill(WIDTH)


def optional(field: str, value: object) -> str | None:
    """:func:`normalised`, or ``None`` for ``None``."""
    return None if value is None else normalised(field, value)
