"""Receipt tokens: opaque, URL-safe, and exactly the receipt's positions back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tillflow.engine import Receipt
from tillflow.service.receipt_tokens import decode_receipt, encode_receipt
from tillflow.shop.errors import InvalidField

positions = st.dictionaries(st.integers(0, 999), st.integers(0, 10**15), min_size=1, max_size=16)


@given(positions)
def test_a_token_decodes_to_the_positions_it_was_made_of(lanes: dict[int, int]) -> None:
    token = encode_receipt(Receipt(positions=lanes, streams={"s": 1}))
    assert token.replace("-", "").replace("_", "").isalnum()
    assert decode_receipt(token).positions == lanes


@given(st.text(max_size=60))
def test_any_other_text_is_refused_naming_the_field_or_decodes_to_positions(text: str) -> None:
    try:
        receipt = decode_receipt(text)
    except InvalidField as refusal:
        assert refusal.field == "wait_for"
    else:
        assert all(lane >= 0 and position >= 0 for lane, position in receipt.positions.items())


@pytest.mark.parametrize("token", ["", "=", "MDo", "bm9wZQ", "MDoxOjI", "w6TDtg", "x" * 4097])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidField):
        decode_receipt(token)
