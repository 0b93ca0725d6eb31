"""Tender rules: settling a total with cash, a card or both, and splitting a refund back."""

from __future__ import annotations

import pytest

from tillflow.shop.errors import InvalidField, RefundExceedsPayment
from tillflow.shop.sale.tenders import (
    CARD,
    CASH,
    PaidTender,
    RefundTender,
    Tender,
    as_asked,
    paid_with,
    settle,
    split_refund,
)


def test_no_tenders_is_the_exact_total_in_cash() -> None:
    assert settle(730, None) == ([PaidTender(CASH, 730, handed=730)], 0)


def test_cash_handed_over_gives_change() -> None:
    assert settle(730, [Tender(CASH, 1000)]) == ([PaidTender(CASH, 730, handed=1000)], 270)


def test_a_card_pays_exactly_the_total() -> None:
    paid, change = settle(730, [Tender(CARD, 730, "tok-1")])
    assert paid == [PaidTender(CARD, 730, card="tok-1")] and change == 0


def test_split_card_first_then_cash_covers_the_rest_in_the_order_asked() -> None:
    paid, change = settle(730, [Tender(CASH, 500), Tender(CARD, 300, "tok-1")])
    assert paid == [PaidTender(CASH, 430, handed=500), PaidTender(CARD, 300, card="tok-1")]
    assert change == 70
    assert sum(tender.amount for tender in paid) == 730


@pytest.mark.parametrize(
    ("tenders", "field", "value"),
    [
        ([Tender(CASH, 729)], "tenders[0].amount", 729),  # does not cover
        ([Tender(CARD, 729, "t")], "tenders[0].amount", 729),  # card must pay it all
        ([Tender(CARD, 731, "t")], "tenders[0].amount", 731),  # more than due
        ([Tender(CARD, 300, "t"), Tender(CASH, 429)], "tenders[1].amount", 429),
        ([Tender(CARD, 730, "t"), Tender(CASH, 10)], "tenders[1].amount", 10),  # nothing due
        ([Tender(CASH, -1)], "tenders[0].amount", -1),
        ([Tender(CASH, 7.5)], "tenders[0].amount", 7.5),  # type: ignore[arg-type]
        ([Tender(CASH, True)], "tenders[0].amount", True),
        ([Tender(CARD, 0, "t")], "tenders[0].amount", 0),
        ([Tender(CARD, 730)], "tenders[0].card", None),  # a card needs its reference
        ([Tender(CASH, 730, "t")], "tenders[0].card", "t"),  # cash carries no card
        ([Tender("cheque", 730)], "tenders[0].type", "cheque"),
        ([Tender(CASH, 500), Tender(CASH, 500)], "tenders[1].type", CASH),
        ([Tender(CARD, 1, "a"), Tender(CARD, 729, "b")], "tenders[1].type", CARD),
        ([], "tenders", 0),
        ("cash", "tenders", "cash"),
        ([42], "tenders[0]", 42),
    ],
)
def test_bad_tenders_name_the_field_and_value(tenders: object, field: str, value: object) -> None:
    with pytest.raises(InvalidField) as refused:
        settle(730, tenders)
    assert refused.value.field == field
    assert refused.value.value == value


def test_as_asked_round_trips_what_the_till_sent() -> None:
    asked = [Tender(CARD, 300, "tok-1"), Tender(CASH, 500)]
    paid, _ = settle(730, asked)
    assert as_asked(paid) == [(t.type, t.amount, t.card) for t in asked]


def test_refund_goes_to_the_card_first_then_cash() -> None:
    paid = [PaidTender(CARD, 300, card="t", reference="sim-1"), PaidTender(CASH, 430, handed=500)]
    first = split_refund("c-1", paid, [], 200)
    assert first == [RefundTender(CARD, 200, authorization="sim-1")]
    second = split_refund("c-1", paid, [first], 250)
    assert second == [
        RefundTender(CARD, 100, authorization="sim-1"),
        RefundTender(CASH, 150),
    ]
    assert split_refund("c-1", paid, [first, second], 280) == [RefundTender(CASH, 280)]


def test_refund_above_what_was_paid_is_refused_naming_what_is_left() -> None:
    paid = [PaidTender(CARD, 300, card="t", reference="sim-1")]
    with pytest.raises(RefundExceedsPayment) as refused:
        split_refund("c-1", paid, [[RefundTender(CARD, 200)]], 101)
    assert (refused.value.refund, refused.value.left) == (101, 100)
    assert "refund=101" in str(refused.value)


def test_checkouts_recorded_before_tenders_were_paid_in_cash() -> None:
    assert paid_with(730, []) == [PaidTender(CASH, 730, handed=730)]
    assert split_refund("c-1", paid_with(730, []), [], 730) == [RefundTender(CASH, 730)]
