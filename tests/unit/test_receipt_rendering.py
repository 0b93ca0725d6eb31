"""Receipts rendered from Sale's events: the 48-column text (golden, and every line within
48 columns for long names, many lines, split tenders, zero-rate and huge amounts) and the
HTML page (every text escaped). Pure: no store."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tillflow.shop.money import money
from tillflow.shop.receipts.html import render_html
from tillflow.shop.receipts.model import (
    PrintedReceipt,
    ShopHeader,
    checkout_receipt,
    masked,
    return_receipt,
)
from tillflow.shop.receipts.numbering import Numbered
from tillflow.shop.receipts.text import WIDTH, render_text
from tillflow.shop.sale.events import CheckedOut, CheckoutLine, ItemsReturned, ReturnLine
from tillflow.shop.sale.tenders import PaidTender, RefundTender
from tillflow.shop.sale.vat import tax_in

PARIS = ShopHeader("Chez Léa — épicerie fine", ZoneInfo("Europe/Paris"))
NOON = datetime(2026, 7, 14, 10, 5, 9, tzinfo=UTC)  # 12:05:09 CEST


def line(product_id: str, name: str, quantity: int, price: int, rate: str, bp: int) -> CheckoutLine:
    gross = quantity * price
    tax = tax_in(gross, bp)
    return CheckoutLine(product_id, name, quantity, price, gross, rate, bp, tax, gross - tax)


SPLIT = CheckedOut(
    "c-0042",
    "till-2",
    NOON,
    [
        line("wine", "Côtes du Rhône, 75 cl", 2, 1199, "standard", 2000),
        line("bread", "Baguette tradition", 3, 125, "reduced", 550),
        line("book", "Le Petit Prince", 1, 900, "zero", 0),
    ],
    total=2398 + 375 + 900,
    tenders=[
        PaidTender("card", 2000, card="tok-5556-4242", code="A1B2C3", reference="sim-00000007"),
        PaidTender("cash", 1673, handed=2000),
    ],
    change=327,
)

GOLDEN = """\
            Chez Léa — épicerie fine
Till till-2                           Receipt 17
2026-07-14 12:05:09 CEST
Checkout c-0042
================================================
Côtes du Rhône, 75 cl
  2 x 11.99                              23.98 B
Baguette tradition
  3 x 1.25                                3.75 A
Le Petit Prince
  1 x 9.00                                9.00 C
------------------------------------------------
TOTAL                                      36.73
------------------------------------------------
VAT                    net        tax      gross
A reduced 5.5 %       3.55       0.20       3.75
B standard 20 %      19.98       4.00      23.98
C zero 0 %            9.00       0.00       9.00
------------------------------------------------
Card ****4242                              20.00
  auth A1B2C3  ref sim-00000007
Cash                                       20.00
CHANGE                                      3.27
================================================
                   Thank you
"""


def test_a_split_payment_prints_as_the_golden_receipt() -> None:
    printed = checkout_receipt(PARIS, SPLIT, Numbered("till-2", 17))
    assert render_text(printed) == GOLDEN


def test_the_figures_add_up_to_what_was_paid() -> None:
    printed = checkout_receipt(PARIS, SPLIT, Numbered("till-2", 17))
    assert sum(row.gross for row in printed.vat) == printed.total == SPLIT.total
    assert sum(row.net + row.tax for row in printed.vat) == SPLIT.total
    assert sum(receipt_line.amount for receipt_line in printed.lines) == SPLIT.total


def test_a_return_names_the_original_and_its_number_and_the_refund_by_tender() -> None:
    returned = ItemsReturned(
        "r-9",
        "c-0042",
        datetime(2026, 7, 15, 8, 0, tzinfo=UTC),
        [ReturnLine("wine", "Côtes du Rhône, 75 cl", 2, 1199, 2398, 400, "standard", 2000)],
        2398,
        [
            RefundTender("card", 2000, authorization="sim-00000007", reference="sim-7-r1"),
            RefundTender("cash", 398),
        ],
    )
    text = render_text(return_receipt(PARIS, returned, SPLIT, Numbered("till-2", 17)))
    assert text.splitlines()[:7] == [
        "            Chez Léa — épicerie fine",
        "                     REFUND",
        "Till till-2",
        "2026-07-15 10:00:00 CEST",
        "Return r-9",
        "For receipt 17 of 2026-07-14 12:05:09 CEST",
        "Checkout c-0042",
    ]
    assert "REFUND                                     23.98" in text
    assert "Refund to card ****4242                    20.00" in text
    assert "Cash from the drawer                        3.98" in text
    assert "CHANGE" not in text


def vat_row(label: str, net: str, tax: str, gross: str) -> str:
    """A VAT row as the text receipt lays it out: a 15-column label, 3 figures of 11."""
    return f"{label:<15}{net:>11}{tax:>11}{gross:>11}"


def _widths(text: str) -> list[int]:
    assert text.endswith("\n")
    return [len(printed) for printed in text.splitlines()]


def test_long_names_ids_and_many_lines_stay_within_48_columns() -> None:
    name = "Extra-virgin olive oil, cold pressed " * 5 + "X" * 120  # 305 characters
    lines = [
        line(f"p-{index}", f"{name} {index}", 10_000, 999_999, "standard", 2000)
        for index in range(200)
    ]
    total = sum(item.line_total for item in lines)
    sale = CheckedOut(
        "c-" + "9" * 60,
        "till-" + "t" * 60,
        NOON,
        lines,
        total,
        [PaidTender("card", total, card="c" * 80, code="9" * 40, reference="r" * 70)],
    )
    header = ShopHeader("S" * 200, ZoneInfo("Pacific/Chatham"))
    text = render_text(checkout_receipt(header, sale, Numbered(sale.till_id, 10**9)))
    assert max(_widths(text)) <= WIDTH
    assert all(not printed.endswith(" ") for printed in text.splitlines())
    assert "X" * 48 in text  # a word longer than a line is broken, not dropped
    assert f"TOTAL{money(total):>{WIDTH - 5}}\n" in text  # 19,999,980,000.00
    assert (
        render_text(checkout_receipt(header, sale, Numbered(sale.till_id, 1))).count("x 9,999.99")
        == 200
    )


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(
        st.text(min_size=1, max_size=200).map(str.strip).filter(bool), min_size=1, max_size=8
    ),
    quantity=st.integers(1, 10_000),
    price=st.integers(0, 10**8),
    bp=st.integers(0, 10_000),
    rate=st.text(min_size=0, max_size=64),
    shop=st.text(min_size=1, max_size=200),
    till=st.integers(1, 64),
    number=st.integers(1, 10**12),
    card=st.text(min_size=1, max_size=64),
    cash=st.integers(0, 10**13),
)
def test_any_receipt_fits_48_columns(
    names: list[str],
    quantity: int,
    price: int,
    bp: int,
    rate: str,
    shop: str,
    till: int,
    number: int,
    card: str,
    cash: int,
) -> None:
    lines = [line(f"p{index}", name, quantity, price, rate, bp) for index, name in enumerate(names)]
    total = sum(item.line_total for item in lines)
    paid = [PaidTender("card", 1, card=card, code=card, reference=card)] if total else []
    paid.append(PaidTender("cash", total - len(paid), handed=total - len(paid) + cash))
    till_id = "t" * till
    sale = CheckedOut("c-1", till_id, NOON, lines, total, paid, cash)
    printed = checkout_receipt(ShopHeader(shop), sale, Numbered(till_id, number))
    assert max(_widths(render_text(printed))) <= WIDTH


@pytest.mark.parametrize("till", range(30, 45))
def test_a_till_and_number_just_too_wide_for_one_line_take_two(till: int) -> None:
    sale = CheckedOut("c-1", "t" * till, NOON, [line("a", "A", 1, 100, "zero", 0)], 100)
    text = render_text(checkout_receipt(ShopHeader(), sale, Numbered("t" * till, 1234)))
    assert max(_widths(text)) <= WIDTH
    assert "Receipt 1234" in text


def test_zero_rate_lines_and_a_sale_recorded_before_vat_print_their_rows() -> None:
    legacy = CheckoutLine("old", "Old stock", 2, 100, 200)  # before VAT: rate "", no tax
    zero = line("book", "Book", 1, 900, "zero", 0)
    sale = CheckedOut("c-1", "till-1", NOON, [legacy, zero], 1100)  # no tenders recorded: cash
    text = render_text(checkout_receipt(ShopHeader(), sale, Numbered("till-1", 1)))
    assert vat_row("A no VAT", "2.00", "0.00", "2.00") in text
    assert vat_row("B zero 0 %", "9.00", "0.00", "9.00") in text
    assert "2026-07-14 10:05:09 UTC" in text  # the default zone
    assert "Cash                                       11.00" in text
    assert "CHANGE                                      0.00" in text


def test_a_rate_label_too_wide_for_its_column_goes_on_a_line_of_its_own() -> None:
    sale = CheckedOut(
        "c-1", "till-1", NOON, [line("a", "A", 1, 1200, "super-reduced-rate", 2000)], 1200
    )
    text = render_text(checkout_receipt(ShopHeader(), sale, Numbered("till-1", 1)))
    figures = vat_row("", "10.00", "2.00", "12.00").lstrip()
    assert f"\nA super-reduced-rate 20 %\n{figures:>{WIDTH}}\n" in text


@pytest.mark.parametrize(
    ("card", "shown"), [("tok-1234-5678", "****5678"), ("abcd", "****"), (None, None)]
)
def test_a_card_reference_is_masked_but_its_last_four(card: str | None, shown: str | None) -> None:
    assert masked(card) == shown


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _hostile() -> PrintedReceipt:
    evil = '<script>alert("x")</script>&amp;'
    sale = CheckedOut(
        "c-1",
        "till-1",
        NOON,
        [line("p", evil, 1, 500, "standard", 2000)],
        500,
        [PaidTender("card", 500, card='"><img src=x>', code="<b>", reference="'&")],
    )
    return checkout_receipt(ShopHeader(evil), sale, Numbered("till-1", 5))


def test_the_html_page_escapes_every_text_it_prints() -> None:
    page = render_html(_hostile())
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    parsed = _Texts()
    parsed.feed(page)
    assert set(parsed.tags) <= {
        "html", "head", "meta", "title", "style", "body", "main", "h1", "p", "time", "table",
        "thead", "tbody", "tr", "th", "td", "br", "span", "footer",
    }  # fmt: skip
    shown = "".join(parsed.text)
    assert '<script>alert("x")</script>&amp;' in shown  # printed as text, exactly
    assert "auth <b> ref '&" in shown
    assert "Receipt 5" in shown and "TOTAL" in shown and "5.00" in shown
