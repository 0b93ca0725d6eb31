"""Sale's events. Money in minor units (cents)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from tillflow.shop.sale.tenders import PaidTender, RefundTender
from tillflow.shop.sale.till_sessions import TILL_EVENTS
from tillflow.shop.sale.vat import BEFORE_VAT, DEFAULT_RATE

CATALOG_STREAM = "catalog"


def checkout_stream(checkout_id: str) -> str:
    return f"checkout-{checkout_id}"


def till_stream(till_id: str) -> str:
    """The till's own stream: declined cards (no sale) are recorded there for audit."""
    return f"till-{till_id}"


class ProductAdded(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    price: int
    gtin: str | None = None
    """The product's GTIN (barcode) in its 14-digit form; ``None``: none."""
    tax_rate: str = DEFAULT_RATE
    """Its rate's name in the shop's table (products added before VAT: the default)."""


class ProductRenamed(msgspec.Struct, frozen=True):
    product_id: str
    name: str


class ProductRepriced(msgspec.Struct, frozen=True):
    product_id: str
    price: int


class ProductDiscontinued(msgspec.Struct, frozen=True):
    product_id: str


class ProductTaxRateChanged(msgspec.Struct, frozen=True):
    """The product is sold at the rate named ``tax_rate`` from now on."""

    product_id: str
    tax_rate: str


class TaxRateDefined(msgspec.Struct, frozen=True):
    """The shop's rate ``rate`` is ``basis_points`` (2000 = 20 %) from now on: for sales
    after it (recorded lines keep the rate they were sold at)."""

    rate: str
    basis_points: int


class ProductGtinChanged(msgspec.Struct, frozen=True):
    """The product's GTIN is now ``gtin`` (14 digits), or it has none (``None``)."""

    product_id: str
    gtin: str | None


class CheckoutLine(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int
    tax_rate: str = BEFORE_VAT
    """The name of the rate it was sold at (``""``: recorded before VAT, no tax in it)."""
    basis_points: int = 0
    tax: int = 0
    net: int = -1
    """``line_total − tax`` (:mod:`~tillflow.shop.sale.vat`); filled in for older lines."""
    gtin: str | None = None
    """The product's GTIN when sold (14 digits): a retry rung up by barcode resolves by it."""

    def __post_init__(self) -> None:
        if self.net < 0:  # a line recorded before VAT
            msgspec.structs.force_setattr(self, "net", self.line_total - self.tax)


class CheckedOut(msgspec.Struct, frozen=True):
    """A sale at a till. Never refused for stock: it has happened when it is paid."""

    checkout_id: str
    till_id: str
    at: datetime
    lines: list[CheckoutLine]
    total: int
    tenders: list[PaidTender] = msgspec.field(default_factory=list)
    """How it was paid; amounts sum to ``total`` (empty in checkouts recorded before
    tenders existed: those were taken as the exact total in cash)."""
    change: int = 0
    """Cash handed back to the customer."""
    session_id: str | None = None
    """The till's open session it was rung up in (``None``: the till is unmanaged — never
    opened — or the sale was recorded before till sessions existed)."""


class ReturnLine(msgspec.Struct, frozen=True):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    refund: int
    tax: int = 0
    """The tax in ``refund``: the bought line's tax in proportion to the units
    (:func:`~tillflow.shop.sale.vat.tax_refunded`)."""
    tax_rate: str = BEFORE_VAT
    basis_points: int = 0
    net: int = -1
    """``refund − tax``; filled in for older lines."""

    def __post_init__(self) -> None:
        if self.net < 0:  # a line recorded before VAT
            msgspec.structs.force_setattr(self, "net", self.refund - self.tax)


class ItemsReturned(msgspec.Struct, frozen=True):
    """Units of a checkout brought back: never more than it bought, net of earlier returns."""

    return_id: str
    checkout_id: str
    at: datetime
    lines: list[ReturnLine]
    refund_total: int
    refunds: list[RefundTender] = msgspec.field(default_factory=list)
    """Where the refund went back to (card first, then cash); amounts sum to
    ``refund_total`` (empty in returns recorded before tenders existed: cash)."""
    till_id: str | None = None
    """The till that paid the refund: the checkout's (``None``: recorded before till
    sessions existed — the checkout's till, too)."""
    session_id: str | None = None
    """That till's open session then (``None``: unmanaged, or recorded before sessions)."""


class CardDeclined(msgspec.Struct, frozen=True):
    """A card the terminal declined at a till: no sale, nothing leaves stock. Recorded on
    the till's stream (:func:`till_stream`) for audit, with the basket as priced and the
    tenders asked for; its event id is derived from the checkout id."""

    checkout_id: str
    till_id: str
    at: datetime
    lines: list[CheckoutLine]
    total: int
    tenders: list[PaidTender]
    reason: str


CATALOG_EVENTS: dict[str, type] = {
    "ProductAdded": ProductAdded,
    "ProductRenamed": ProductRenamed,
    "ProductRepriced": ProductRepriced,
    "ProductDiscontinued": ProductDiscontinued,
    "ProductTaxRateChanged": ProductTaxRateChanged,
    "TaxRateDefined": TaxRateDefined,
    "ProductGtinChanged": ProductGtinChanged,
}
SALE_EVENTS: dict[str, type] = {
    **CATALOG_EVENTS,
    "CheckedOut": CheckedOut,
    "ItemsReturned": ItemsReturned,
    "CardDeclined": CardDeclined,
    **TILL_EVENTS,
}
