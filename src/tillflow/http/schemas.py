"""Shared JSON shapes: strict input types whose rules are :mod:`tillflow.shop.validation`'s own
(the schema documents the same bounds, read from the same constants), and receipts.

Money is integer minor units (cents); quantities are integers. No coercion: ``"5"`` and
``5.0`` are not integers; NaN and infinity are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Final, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tillflow.engine import Receipt
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop import validation
from tillflow.shop.errors import InvalidField
from tillflow.shop.sale import gtin
from tillflow.shop.sale.till_sessions import MAX_CASH
from tillflow.shop.sale.vat import MAX_BASIS_POINTS

T = TypeVar("T")


class RequestBody(BaseModel):
    """Base of request bodies: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def _rule(check: Callable[[str, object], T]) -> AfterValidator:
    """Run a :mod:`tillflow.shop.validation` check; its reason becomes the field's reason."""

    def run(value: object) -> T:
        try:
            return check("value", value)
        except InvalidField as refusal:
            raise PydanticCustomError("invalid_field", refusal.reason) from None

    return AfterValidator(run)


IDENTIFIER_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:-]*$"

Identifier = Annotated[
    StrictStr,
    _rule(validation.identifier),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_IDENTIFIER,
            "pattern": IDENTIFIER_PATTERN,
        }
    ),
]
"""An id: letters, digits and ``. _ : -``, starting alphanumeric, 1..100 characters."""

Name = Annotated[
    StrictStr,
    _rule(validation.name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_NAME,
            "description": "NFC-normalised and trimmed; no control or unassigned characters.",
        }
    ),
]


def _between(low: int, high: int) -> AfterValidator:
    def check(field: str, value: object) -> int:
        return validation.whole_number(field, value, low, high)

    return _rule(check)


def _integer(low: int, high: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": low, "maximum": high})


Quantity = Annotated[
    StrictInt, _between(1, validation.MAX_QUANTITY), _integer(1, validation.MAX_QUANTITY)
]
StockQuantity = Annotated[
    StrictInt,
    _between(1, validation.MAX_STOCK_QUANTITY),
    _integer(1, validation.MAX_STOCK_QUANTITY),
]
Count = Annotated[
    StrictInt,
    _between(0, validation.MAX_STOCK_QUANTITY),
    _integer(0, validation.MAX_STOCK_QUANTITY),
]
Price = Annotated[StrictInt, _between(0, validation.MAX_PRICE), _integer(0, validation.MAX_PRICE)]
Cash = Annotated[StrictInt, _between(0, MAX_CASH), _integer(0, MAX_CASH)]
"""Cents of cash in a till's drawer: a float or a count."""
BasisPoints = Annotated[StrictInt, _between(0, MAX_BASIS_POINTS), _integer(0, MAX_BASIS_POINTS)]
"""A tax rate's size: 0..10,000 basis points (2000 is 20 %)."""


def _gtin(field: str, value: object) -> str:
    """``value`` as sent, once :func:`~tillflow.shop.sale.gtin.normalised` accepts it."""
    gtin.normalised(field, value)
    assert isinstance(value, str)
    return value


Gtin = Annotated[
    StrictStr,
    _rule(_gtin),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([0-9]{8}|[0-9]{12,14})$",
            "description": "A GTIN (barcode): EAN-8, UPC-A, EAN-13 or GTIN-14, check digit last.",
            "examples": ["4006381333931"],
        }
    ),
]
"""A GTIN with a valid check digit, as sent (the shop keeps it in its 14-digit form)."""


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "must be an ISO 8601 date and time string")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "out of range once in UTC") from None


Timestamp = Annotated[
    AwareDatetime,
    Strict(False),
    BeforeValidator(_text_only),
    AfterValidator(_in_utc),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An ISO 8601 date and time with a zone (``2026-05-01T12:00:00Z``), kept in UTC."""


# -- receipts -------------------------------------------------------------------------------


class ReceiptOut(BaseModel):
    """What a write recorded: per lane the last position written, per stream its version,
    and ``token``, to pass as ``wait_for`` to a read for read-your-writes."""

    token: str = Field(description="Opaque; pass as ?wait_for= to read your own writes.")
    positions: dict[int, int]
    streams: dict[str, int]

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptOut:
        return cls(
            token=encode_receipt(receipt),
            positions=dict(receipt.positions),
            streams=dict(receipt.streams),
        )
