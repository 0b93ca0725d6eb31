"""VAT's one rounding rule: tax inside a tax-inclusive price, half to even, per line; returns
refund the line's tax in proportion to the units, never more than was collected."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from tillflow.shop.sale.vat import MAX_BASIS_POINTS, round_half_even, tax_in, tax_refunded

RATES = st.integers(0, MAX_BASIS_POINTS)
CENTS = st.integers(0, 10**12)


def _exact(gross: int, basis_points: int) -> Fraction:
    return Fraction(gross * basis_points, 10_000 + basis_points)


def test_twenty_percent_of_a_tax_inclusive_price() -> None:
    assert tax_in(120, 2000) == 20  # 1.20 incl. 20 %: 1.00 net, 0.20 tax
    assert tax_in(1000, 2000) == 167  # 166.67 rounds up
    assert tax_in(105, 500) == 5


def test_halves_round_to_the_even_cent() -> None:
    # 99 at 20 %: 16.5 → 16 (even); 33 at 20 %: 5.5 → 6 (even)
    assert tax_in(99, 2000) == 16
    assert tax_in(33, 2000) == 6
    assert round_half_even(5, 2) == 2
    assert round_half_even(7, 2) == 4
    assert round_half_even(3, 2) == 2
    assert round_half_even(1, 2) == 0


def test_one_cent_and_zero_rate_and_zero_price() -> None:
    assert tax_in(1, 2000) == 0  # 0.1667 of a cent
    assert tax_in(1, MAX_BASIS_POINTS) == 0  # half a cent: to the even 0
    assert tax_in(3, MAX_BASIS_POINTS) == 2  # 1.5 → 2
    assert tax_in(10_000, 0) == 0
    assert tax_in(0, 2000) == 0


def test_a_line_returned_one_unit_at_a_time_refunds_exactly_its_tax() -> None:
    # 3 × 0.33 at 20 %: gross 99, tax 16; each unit alone would be 5.5 → 6, 18 in all
    line_tax = tax_in(99, 2000)
    refunds = [tax_refunded(line_tax, 3, returned, 1) for returned in range(3)]
    assert refunds == [5, 6, 5]
    assert sum(refunds) == line_tax == 16


@given(gross=CENTS, basis_points=RATES)
def test_tax_is_the_exact_share_rounded_half_even(gross: int, basis_points: int) -> None:
    tax = tax_in(gross, basis_points)
    assert tax == round(_exact(gross, basis_points))  # Python rounds a Fraction half to even
    assert 0 <= tax <= gross
    assert (gross - tax) + tax == gross


@given(
    st.lists(
        st.tuples(st.integers(0, 10**8), st.integers(1, 10_000), RATES), min_size=1, max_size=100
    )
)
def test_lines_net_and_tax_add_up_to_what_was_paid(lines: list[tuple[int, int, int]]) -> None:
    paid = nets = taxes = 0
    for unit_price, quantity, basis_points in lines:
        gross = unit_price * quantity
        tax = tax_in(gross, basis_points)
        net = gross - tax
        assert net >= 0 and tax >= 0
        paid, nets, taxes = paid + gross, nets + net, taxes + tax
    assert nets + taxes == paid == sum(price * quantity for price, quantity, _ in lines)


@st.composite
def _returned_in_pieces(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    quantity = draw(st.integers(1, 200))
    unit_price = draw(st.integers(0, 10**6))
    basis_points = draw(RATES)
    pieces: list[int] = []
    left = quantity
    while left:
        piece = draw(st.integers(1, left))
        pieces.append(piece)
        left -= piece
    return unit_price, quantity, basis_points, pieces


@given(_returned_in_pieces())
def test_returns_in_any_pieces_refund_the_line_tax_exactly_once(
    case: tuple[int, int, int, list[int]],
) -> None:
    unit_price, quantity, basis_points, pieces = case
    line_tax = tax_in(unit_price * quantity, basis_points)
    returned = refunded = 0
    for piece in pieces:
        tax = tax_refunded(line_tax, quantity, returned, piece)
        gross = unit_price * piece
        assert 0 <= tax <= gross  # never a negative net refund
        # within a cent of the exact proportional share
        assert abs(tax - Fraction(line_tax * piece, quantity)) < 1 + Fraction(1, 2)
        returned += piece
        refunded += tax
        assert refunded <= line_tax
    assert refunded == line_tax
