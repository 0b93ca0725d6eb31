"""A receipt as a printable HTML page (one self-contained document, 80 mm wide when
printed). Every text from the receipt is escaped: names, ids and references cannot add
markup."""

from __future__ import annotations

from html import escape
from typing import Final

from tillflow.shop.money import money
from tillflow.shop.receipts.model import PrintedReceipt, TenderRow
from tillflow.shop.receipts.text import when
from tillflow.shop.sale.tenders import CARD

STYLE: Final = """\
@page { size: 80mm auto; margin: 4mm; }
body { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
       max-width: 72mm; margin: 1em auto; color: #000; background: #fff; }
h1 { font-size: 16px; text-align: center; margin: 0 0 .3em; }
h2 { font-size: 14px; text-align: center; margin: 0 0 .3em; }
p { margin: .1em 0; }
table { width: 100%; border-collapse: collapse; margin: .4em 0;
        border-top: 1px dashed #000; }
th, td { padding: .1em 0; vertical-align: top; text-align: left; }
.amount { text-align: right; white-space: nowrap; }
.total th, .total td { font-weight: bold; font-size: 14px; }
.detail { padding-left: 1em; }
footer { text-align: center; margin-top: .6em; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _amount(cents: int) -> str:
    return f'<td class="amount">{_e(money(cents))}</td>'


def _tender(tender: TenderRow, refund: bool) -> str:
    if tender.kind == CARD:
        label = ("Refund to card " if refund else "Card ") + (tender.card or "")
        details = " ".join(
            f"{name} {value}"
            for name, value in (("auth", tender.code), ("ref", tender.reference))
            if value
        )
        detail = f'<br><span class="detail">{_e(details)}</span>' if details else ""
        return f"<tr><td>{_e(label.strip())}{detail}</td>{_amount(tender.amount)}</tr>"
    label = "Cash from the drawer" if refund else "Cash"
    return f"<tr><td>{label}</td>{_amount(tender.amount)}</tr>"


def render_html(receipt: PrintedReceipt) -> str:
    """``receipt`` as an HTML document."""
    original = receipt.returned
    kind = "Refund" if original is not None else "Receipt"
    head = [
        f"<h1>{_e(receipt.shop)}</h1>",
        "<h2>REFUND</h2>" if original is not None else "",
        f"<p>Till {_e(receipt.till_id)}"
        + (f" · Receipt {receipt.number}" if original is None else "")
        + "</p>",
        f'<p><time datetime="{_e(receipt.at.isoformat())}">{_e(when(receipt.at))}</time></p>',
    ]
    if original is None:
        head.append(f"<p>Checkout {_e(receipt.checkout_id)}</p>")
    else:
        head.append(f"<p>Return {_e(receipt.return_id)}</p>")
        head.append(f"<p>For receipt {original.number} of {_e(when(original.at))}</p>")
        head.append(f"<p>Checkout {_e(original.checkout_id)}</p>")
    lines = "".join(
        f'<tr><td>{_e(line.name)}<br><span class="detail">{line.quantity:,} x '
        f"{_e(money(line.unit_price))}</span></td>{_amount(line.amount)}"
        f"<td>{_e(line.code)}</td></tr>"
        for line in receipt.lines
    )
    vat = "".join(
        f"<tr><td>{_e(row.code)} {_e(row.label)}</td>{_amount(row.net)}{_amount(row.tax)}"
        f"{_amount(row.gross)}</tr>"
        for row in receipt.vat
    )
    tenders = "".join(_tender(tender, original is not None) for tender in receipt.tenders)
    if original is None and any(tender.kind != CARD for tender in receipt.tenders):
        tenders += f"<tr><td>Change</td>{_amount(receipt.change)}</tr>"
    title = f"{kind} {receipt.number} · {receipt.till_id} · {receipt.shop}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n"
        '<main class="receipt">\n'
        + "\n".join(part for part in head if part)
        + f'\n<table class="lines"><tbody>{lines}</tbody></table>\n'
        f'<table class="total"><tr><th>{"REFUND" if original is not None else "TOTAL"}</th>'
        f"{_amount(receipt.total)}</tr></table>\n"
        '<table class="vat"><thead><tr><th>VAT</th><th class="amount">net</th>'
        '<th class="amount">tax</th><th class="amount">gross</th></tr></thead>'
        f"<tbody>{vat}</tbody></table>\n"
        f'<table class="tenders"><tbody>{tenders}</tbody></table>\n'
        "<footer>Thank you</footer>\n</main>\n</body>\n</html>\n"
    )
