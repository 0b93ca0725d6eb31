"""The printable receipt of a checkout or a return: a view model built from Sale's events,
which both renderings (:mod:`~tillflow.shop.receipts.text`, :mod:`~tillflow.shop.receipts.html`)
print as given — they decide layout, never figures.

A checkout's receipt: the shop's name, the till, the time in the shop's time zone, the
till's receipt number, each line (name, quantity × unit price, line total, VAT code), VAT
per rate (:func:`~tillflow.shop.sale.tax_rates.by_rate`: net, tax, gross; codes A, B, …
in rate order), the total, the tenders (cash handed over; a card masked to its last four
characters, with the authorization code and the terminal's reference) and the change.

A return's receipt: the same for the units brought back at the till that refunds them,
titled as a refund, naming the original checkout, its receipt number and time, and the
refund by tender (card first, then cash from the drawer). Returns take no number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from string import ascii_uppercase
from typing import Final

from tillflow.shop.money import percent
from tillflow.shop.receipts.numbering import Numbered
from tillflow.shop.sale.events import CheckedOut, CheckoutLine, ItemsReturned, ReturnLine
from tillflow.shop.sale.tax_rates import by_rate
from tillflow.shop.sale.tenders import CARD, paid_with, refunded_with

SHOWN: Final = 4
"""Characters of a card reference a receipt shows (the last ones); the rest are masked."""


@dataclass(frozen=True)
class ShopHeader:
    """What every receipt of the shop says about it: its name and its time zone."""

    name: str = "tillflow"
    timezone: tzinfo = UTC


@dataclass(frozen=True)
class ReceiptLine:
    """A line: ``quantity`` × ``unit_price`` = ``amount`` (gross), taxed at VAT ``code``."""

    name: str
    quantity: int
    unit_price: int
    amount: int
    code: str


@dataclass(frozen=True)
class VatRow:
    """One rate's lines together: ``net`` + ``tax`` = ``gross``."""

    code: str
    rate: str
    basis_points: int
    net: int
    tax: int
    gross: int

    @property
    def label(self) -> str:
        """``standard 20 %`` (``no VAT`` for lines recorded before the shop kept VAT)."""
        return f"{self.rate} {percent(self.basis_points)}" if self.rate else "no VAT"


@dataclass(frozen=True)
class TenderRow:
    """Money in (a sale) or out (a refund): ``kind`` ``cash`` or ``card``. Cash in shows
    ``amount`` handed over; a card its masked reference, authorization ``code`` and the
    terminal's ``reference`` (of the charge, or of the refund)."""

    kind: str
    amount: int
    card: str | None = None
    code: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Original:
    """The checkout a return brings units of: its id, till, receipt number and time."""

    checkout_id: str
    till_id: str
    number: int
    at: datetime


@dataclass(frozen=True)
class PrintedReceipt:
    """A receipt as printed. ``returned`` is ``None`` for a checkout's; for a return's it
    names the original, ``number`` is the original's and ``tenders`` are the refunds."""

    shop: str
    till_id: str
    number: int
    checkout_id: str
    at: datetime
    """In the shop's time zone."""
    lines: list[ReceiptLine]
    vat: list[VatRow]
    total: int
    tenders: list[TenderRow]
    change: int = 0
    return_id: str | None = None
    returned: Original | None = None


def masked(card: str | None) -> str | None:
    """A card reference with all but its last :data:`SHOWN` characters masked."""
    if card is None:
        return None
    return "****" + (card[-SHOWN:] if len(card) > SHOWN else "")


def _code(index: int) -> str:
    return ascii_uppercase[index] if index < len(ascii_uppercase) else str(index + 1)


def _priced(
    lines: Sequence[CheckoutLine] | Sequence[ReturnLine],
) -> tuple[list[ReceiptLine], list[VatRow]]:
    """``lines`` as printed, each with its rate's code; and VAT per rate, coded A, B, … in
    rate order (:func:`~tillflow.shop.sale.tax_rates.by_rate`)."""
    vat = [
        VatRow(_code(index), rate.rate, rate.basis_points, rate.net, rate.tax, rate.gross)
        for index, rate in enumerate(by_rate(lines))
    ]
    codes = {(row.rate, row.basis_points): row.code for row in vat}
    printed = [
        ReceiptLine(
            line.name,
            line.quantity,
            line.unit_price,
            line.line_total if isinstance(line, CheckoutLine) else line.refund,
            codes[(line.tax_rate, line.basis_points)],
        )
        for line in lines
    ]
    return printed, vat


def checkout_receipt(header: ShopHeader, sale: CheckedOut, numbered: Numbered) -> PrintedReceipt:
    """The receipt of ``sale``, numbered ``numbered`` at its till."""
    lines, vat = _priced(sale.lines)
    tenders = [
        TenderRow(CARD, tender.amount, masked(tender.card), tender.code, tender.reference)
        if tender.type == CARD
        else TenderRow(tender.type, tender.handed)
        for tender in paid_with(sale.total, sale.tenders)
    ]
    return PrintedReceipt(
        shop=header.name,
        till_id=sale.till_id,
        number=numbered.number,
        checkout_id=sale.checkout_id,
        at=sale.at.astimezone(header.timezone),
        lines=lines,
        vat=vat,
        total=sale.total,
        tenders=tenders,
        change=sale.change,
    )


def return_receipt(
    header: ShopHeader, returned: ItemsReturned, sale: CheckedOut, numbered: Numbered
) -> PrintedReceipt:
    """The receipt of ``returned``, units of ``sale`` (numbered ``numbered``), at the till
    that paid the refund (returns recorded before tills said so: the sale's)."""
    lines, vat = _priced(returned.lines)
    cards = {tender.reference: tender.card for tender in sale.tenders if tender.type == CARD}
    refunds = [
        TenderRow(
            part.type,
            part.amount,
            masked(cards.get(part.authorization)),
            None,
            part.reference,
        )
        for part in refunded_with(returned.refund_total, returned.refunds)
    ]
    return PrintedReceipt(
        shop=header.name,
        till_id=returned.till_id or sale.till_id,
        number=numbered.number,
        checkout_id=sale.checkout_id,
        at=returned.at.astimezone(header.timezone),
        lines=lines,
        vat=vat,
        total=returned.refund_total,
        tenders=refunds,
        return_id=returned.return_id,
        returned=Original(
            sale.checkout_id, sale.till_id, numbered.number, sale.at.astimezone(header.timezone)
        ),
    )
