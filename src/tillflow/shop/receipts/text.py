"""A receipt as text for an 80 mm thermal printer: 48 columns of a monospace font.

Every line is at most :data:`WIDTH` characters and carries no trailing spaces: names and
ids too long for a line are wrapped (a word longer than a line is broken); amounts are
right-aligned, and an amount that does not fit beside its label goes on the next line.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Final

from tillflow.shop.money import money
from tillflow.shop.receipts.model import PrintedReceipt, TenderRow
from tillflow.shop.sale.tenders import CARD

WIDTH: Final = 48
LABEL: Final = 15
"""Columns of a VAT row's label (``A standard 20 %``); three figures of 11 fill the rest."""
FIGURE: Final = 11
RULE: Final = "-" * WIDTH
DOUBLE: Final = "=" * WIDTH


def wrap(text: str, indent: str = "") -> list[str]:
    """``text`` in lines of at most :data:`WIDTH` (``indent`` before each but the first)."""
    return textwrap.wrap(
        text,
        WIDTH,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [""]


def pair(left: str, right: str) -> list[str]:
    """``left`` and ``right`` on one line, ``right`` against the right edge; when they do
    not fit together, ``left`` wrapped, then ``right`` on its own line(s)."""
    if len(left) + 1 + len(right) <= WIDTH:
        return [left + " " * (WIDTH - len(left) - len(right)) + right]
    return wrap(left) + [line.rjust(WIDTH) for line in wrap(right)]


def center(text: str) -> list[str]:
    return [line.center(WIDTH).rstrip() for line in wrap(text)]


def when(at: datetime) -> str:
    """``2026-12-06 14:05:09 CET``: the time as the shop's clock on the wall reads it."""
    return f"{at:%Y-%m-%d %H:%M:%S} {at.tzname() or ''}".rstrip()


def _figures(*cents: int) -> str:
    return "".join(money(amount).rjust(FIGURE) for amount in cents)


def _vat(receipt: PrintedReceipt) -> list[str]:
    lines = ["VAT".ljust(LABEL) + "net".rjust(FIGURE) + "tax".rjust(FIGURE) + "gross".rjust(FIGURE)]
    for row in receipt.vat:
        label = f"{row.code} {row.label}"
        figures = _figures(row.net, row.tax, row.gross)
        if len(label) <= LABEL and len(figures) == WIDTH - LABEL:
            lines.append(label.ljust(LABEL) + figures)
            continue
        lines.extend(wrap(label))
        if len(figures) <= WIDTH:
            lines.append(figures.rjust(WIDTH))
        else:  # amounts wider than their columns: one per line
            for name, amount in (("net", row.net), ("tax", row.tax), ("gross", row.gross)):
                lines.extend(pair(f"  {name}", money(amount)))
    return lines


def _tender(tender: TenderRow, refund: bool) -> list[str]:
    if tender.kind == CARD:
        label = "Refund to card" if refund else "Card"
        lines = pair(f"{label} {tender.card or ''}".rstrip(), money(tender.amount))
        details = [
            f"{name} {value}"
            for name, value in (("auth", tender.code), ("ref", tender.reference))
            if value
        ]
        if details:
            lines.extend(wrap("  " + "  ".join(details), indent="  "))
        return lines
    return pair("Cash from the drawer" if refund else "Cash", money(tender.amount))


def render_text(receipt: PrintedReceipt) -> str:
    """``receipt`` as 48-column text, one ``\\n`` after every line."""
    original = receipt.returned
    lines = center(receipt.shop)
    if original is not None:
        lines += center("REFUND")
    if original is None:
        lines += pair(f"Till {receipt.till_id}", f"Receipt {receipt.number}")
        lines += wrap(when(receipt.at))
        lines += wrap(f"Checkout {receipt.checkout_id}")
    else:
        lines += wrap(f"Till {receipt.till_id}")
        lines += wrap(when(receipt.at))
        lines += wrap(f"Return {receipt.return_id}")
        lines += wrap(f"For receipt {original.number} of {when(original.at)}")
        lines += wrap(f"Checkout {original.checkout_id}")
    lines.append(DOUBLE)
    for line in receipt.lines:
        lines += wrap(line.name)
        lines += pair(
            f"  {line.quantity:,} x {money(line.unit_price)}", f"{money(line.amount)} {line.code}"
        )
    lines.append(RULE)
    lines += pair("REFUND" if original is not None else "TOTAL", money(receipt.total))
    lines.append(RULE)
    lines += _vat(receipt)
    lines.append(RULE)
    for tender in receipt.tenders:
        lines += _tender(tender, refund=original is not None)
    if original is None and any(tender.kind != CARD for tender in receipt.tenders):
        lines += pair("CHANGE", money(receipt.change))
    lines.append(DOUBLE)
    lines += center("Thank you")
    return "\n".join(lines) + "\n"
