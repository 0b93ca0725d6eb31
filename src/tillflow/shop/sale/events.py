"""Sale's events. Money in minor units (cents)."""

from __future__ import annotations

from datetime import datetime

import msgspec

CATALOG_STREAM = "catalog"


def checkout_stream(checkout_id: str) -> str:
    return f"checkout-{checkout_id}"


class ProductAdded(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    price: int


class ProductRenamed(msgspec.Struct, frozen=True):
    product_id: str
    name: str


class ProductRepriced(msgspec.Struct, frozen=True):
    product_id: str
    price: int


class ProductDiscontinued(msgspec.Struct, frozen=True):
    product_id: str


class CheckoutLine(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class CheckedOut(msgspec.Struct, frozen=True):
    """A sale at a till. Never refused for stock: it has happened when it is paid."""

    checkout_id: str
    till_id: str
    at: datetime
    lines: list[CheckoutLine]
    total: int


class ReturnLine(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    refund: int


class ItemsReturned(msgspec.Struct, frozen=True):
    """Units of a checkout brought back: never more than it bought, net of earlier returns."""

    return_id: str
    checkout_id: str
    at: datetime
    lines: list[ReturnLine]
    refund_total: int


CATALOG_EVENTS: dict[str, type] = {
    "ProductAdded": ProductAdded,
    "ProductRenamed": ProductRenamed,
    "ProductRepriced": ProductRepriced,
    "ProductDiscontinued": ProductDiscontinued,
}
SALE_EVENTS: dict[str, type] = {
    **CATALOG_EVENTS,
    "CheckedOut": CheckedOut,
    "ItemsReturned": ItemsReturned,
}
