"""Checks shared by the shop's commands: each raises :class:`InvalidField` naming the field,
the value and the reason, whatever the value's type (library callers have no HTTP layer
checking types first). Money is integer minor units (cents): never a float."""

from __future__ import annotations

import re
import unicodedata
from typing import Final, TypeVar

from tillflow.shop.errors import InvalidField

T = TypeVar("T")

MAX_IDENTIFIER: Final = 100
MAX_NAME: Final = 200
MAX_QUANTITY: Final = 10_000
MAX_STOCK_QUANTITY: Final = 1_000_000
MAX_PRICE: Final = 100_000_000_00  # 100 million in major units
MAX_LINES: Final = 100
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")


def invalid(field: str, value: object, reason: str) -> InvalidField:
    """The :class:`InvalidField` for ``value``, or for a text standing in for it when Python
    cannot print it (an int of more than 4,300 digits, anything holding one): the error
    must name the value, and must not fail while doing so."""
    try:
        repr(value)
    except Exception as error:  # Python's digit limit (ValueError), or a failing __repr__
        value = _stand_in(value, error)
    return InvalidField(field, value, reason)


def _stand_in(value: object, error: Exception) -> str:
    if isinstance(value, int):
        size = abs(value)
        digits = int(size.bit_length() * 0.30102999566398120)  # log10(2): at most one short
        while size >= 10**digits:
            digits += 1
        return f"<{'negative ' if value < 0 else ''}int of {digits} digits>"
    return f"<{type(value).__name__} that Python cannot print: {error}>"


def of_type(field: str, value: object, kind: type[T]) -> T:
    """``value`` when it is a ``kind`` (e.g. the command an entry point takes)."""
    if not isinstance(value, kind):
        raise invalid(field, value, f"must be a {kind.__name__}")
    return value


def identifier(field: str, value: object) -> str:
    """An id: 1..100 characters of letters, digits and ``. _ : -``, starting alphanumeric."""
    if not isinstance(value, str):
        raise invalid(field, value, "must be a string")
    if not value or len(value) > MAX_IDENTIFIER:
        raise InvalidField(field, value, f"must be 1..{MAX_IDENTIFIER} characters")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidField(field, value, "may hold only letters, digits and . _ : - ")
    return value


def name(field: str, value: object) -> str:
    """A display name: NFC-normalised, trimmed, 1..200 characters, no control characters."""
    if not isinstance(value, str):
        raise invalid(field, value, "must be a string")
    text = unicodedata.normalize("NFC", value).strip()
    if not text or len(text) > MAX_NAME:
        raise InvalidField(field, value, f"must be 1..{MAX_NAME} characters (after trimming)")
    if any(unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") for char in text):
        raise InvalidField(field, value, "must not contain control or unassigned characters")
    return text


def whole_number(field: str, value: object, low: int, high: int) -> int:
    """An ``int`` (not a bool, not a float — not even 2.0, NaN or infinity) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, value, "must be a whole number")
    if not low <= value <= high:
        raise invalid(field, value, f"must be between {low} and {high}")
    return value


def quantity(field: str, value: object, high: int = MAX_QUANTITY) -> int:
    """A number of units: 1..``high``."""
    return whole_number(field, value, 1, high)


def price(field: str, value: object) -> int:
    """A price in minor units (cents): 0..10,000,000,000."""
    return whole_number(field, value, 0, MAX_PRICE)
