"""Properties of the tender rules (hypothesis): whatever a till asks, a settled checkout's
tenders pay exactly its total with the change the cash leaves; refunds in any pieces go to
the card first and never add up to more than was paid."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tillflow.shop.errors import InvalidField, RefundExceedsPayment
from tillflow.shop.sale.tenders import (
    CARD,
    CASH,
    PaidTender,
    RefundTender,
    Tender,
    settle,
    split_refund,
)

AMOUNTS = st.integers(min_value=-5, max_value=5_000)
TENDERS = st.lists(
    st.one_of(
        st.builds(Tender, st.just(CASH), AMOUNTS),
        st.builds(Tender, st.just(CARD), AMOUNTS, st.just("tok")),
    ),
    min_size=0,
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(total=st.integers(min_value=0, max_value=3_000), asked=TENDERS)
def test_settled_tenders_pay_the_total_exactly(total: int, asked: list[Tender]) -> None:
    try:
        paid, change = settle(total, asked)
    except InvalidField as refusal:
        assert refusal.field.startswith("tenders")
        return
    assert sum(tender.amount for tender in paid) == total
    assert change == sum(t.handed - t.amount for t in paid if t.type == CASH) >= 0
    assert [t.type for t in paid] == [t.type for t in asked]  # the order asked
    for tender, wanted in zip(paid, asked, strict=True):
        if tender.type == CARD:
            assert tender.amount == wanted.amount > 0  # a card pays exactly what it asked
        else:
            assert tender.handed == wanted.amount


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=3_000),
    card_share=st.floats(min_value=0, max_value=1),
    pieces=st.lists(st.integers(min_value=0, max_value=1_500), max_size=6),
)
def test_refunds_go_to_the_card_first_and_never_exceed_the_payment(
    total: int, card_share: float, pieces: list[int]
) -> None:
    on_card = int(total * card_share)
    paid = [PaidTender(CASH, total - on_card, handed=total - on_card)]
    if on_card:
        paid.insert(0, PaidTender(CARD, on_card, card="tok", reference="sim-1"))
    earlier: list[list[RefundTender]] = []
    for piece in pieces:
        left = total - sum(part.amount for parts in earlier for part in parts)
        try:
            parts = split_refund("c-1", paid, earlier, piece)
        except RefundExceedsPayment as refused:
            assert piece > left == refused.left
            continue
        assert sum(part.amount for part in parts) == piece <= left
        earlier.append(parts)
        to_card = sum(p.amount for ps in earlier for p in ps if p.type == CARD)
        in_cash = sum(p.amount for ps in earlier for p in ps if p.type == CASH)
        assert to_card <= on_card and in_cash <= total - on_card
        assert in_cash == 0 or to_card == on_card  # cash only once the card is refunded
