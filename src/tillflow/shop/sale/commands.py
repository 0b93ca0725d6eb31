"""Sale's commands: what a till or a manager asks for. Validated by the decisions in
:mod:`tillflow.shop.sale.decisions`, which name the field of any refusal. Making one checks
nothing (msgspec checks types only when decoding): a field of another type is refused by
the service as :class:`~tillflow.shop.errors.InvalidField` naming it, and nothing is written."""

from __future__ import annotations

from datetime import datetime

import msgspec

from tillflow.shop.sale.tenders import Tender
from tillflow.shop.sale.vat import DEFAULT_RATE


class AddProduct(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    price: int
    gtin: str | None = None
    """Its barcode: an EAN-13, UPC-A, EAN-8 or GTIN-14 (kept in its 14-digit form)."""
    tax_rate: str = DEFAULT_RATE
    """The name of its rate in the shop's table."""


class RenameProduct(msgspec.Struct, frozen=True):
    product_id: str
    name: str


class RepriceProduct(msgspec.Struct, frozen=True):
    product_id: str
    price: int


class DiscontinueProduct(msgspec.Struct, frozen=True):
    product_id: str


class ChangeProductTaxRate(msgspec.Struct, frozen=True):
    """Sell the product at another rate of the shop's table from now on."""

    product_id: str
    tax_rate: str


class DefineTaxRate(msgspec.Struct, frozen=True):
    """Add a rate to the shop's table, or change one: ``basis_points`` 0..10,000 (2000 =
    20 %). Lines already recorded keep the rate they were sold at."""

    rate: str
    basis_points: int


class ChangeProductGtin(msgspec.Struct, frozen=True):
    """Give the product a GTIN (barcode), another one, or none (``gtin=None``)."""

    product_id: str
    gtin: str | None


class LineRequest(msgspec.Struct, frozen=True):
    """A line of a checkout or return: a product by its id, or — in a checkout only — by a
    GTIN (barcode) the catalog resolves (``LineRequest(None, 2, gtin="4006381333931")``).
    Exactly one of the two."""

    product_id: str | None
    quantity: int
    gtin: str | None = None


class Checkout(msgspec.Struct, frozen=True):
    """Ring up a sale. ``checkout_id`` is the idempotency key (a UUIDv7 is best: ids in time
    order keep the log's indexes cheap). The same product on two lines is merged into one
    line, in the order first seen: scanning an item twice is normal at a till. ``at`` is
    the time of the sale at the till; when omitted the shop's clock fills it in.
    ``tenders``: how the customer pays (see :mod:`tillflow.shop.sale.tenders`); ``None``
    means the exact total in cash."""

    checkout_id: str
    till_id: str
    lines: list[LineRequest]
    at: datetime | None = None
    tenders: list[Tender] | None = None


class ReturnItems(msgspec.Struct, frozen=True):
    """Bring units of a checkout back. ``return_id`` is the idempotency key."""

    return_id: str
    checkout_id: str
    lines: list[LineRequest]
    at: datetime | None = None
