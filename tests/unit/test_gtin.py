"""GTINs: check digits of EAN-13, UPC-A, EAN-8 and GTIN-14, one 14-digit form for all."""

from __future__ import annotations

import pytest

from tillflow.shop.errors import InvalidField
from tillflow.shop.sale.gtin import check_digit, normalised, optional

REAL = {
    "4006381333931": "EAN-13",  # a Stabilo pen
    "5901234123457": "EAN-13",  # GS1's example label
    "9780306406157": "EAN-13",  # an ISBN-13
    "036000291452": "UPC-A",  # a U.S. grocery item
    "012345678905": "UPC-A",
    "73513537": "EAN-8",
    "96385074": "EAN-8",
    "10012345678902": "GTIN-14",  # a case of 012345678905
}


@pytest.mark.parametrize("code", sorted(REAL))
def test_real_barcodes_are_valid_and_padded_to_14_digits(code: str) -> None:
    assert normalised("gtin", code) == code.zfill(14)
    assert check_digit(code[:-1]) == int(code[-1])


@pytest.mark.parametrize("code", sorted(REAL))
def test_every_other_check_digit_is_refused_naming_the_kind(code: str) -> None:
    for digit in "0123456789":
        if digit == code[-1]:
            continue
        wrong = code[:-1] + digit
        with pytest.raises(InvalidField) as refused:
            normalised("lines[0].gtin", wrong)
        assert refused.value.field == "lines[0].gtin"
        assert refused.value.value == wrong
        assert refused.value.reason == f"wrong {REAL[code]} check digit: expected {code[-1]}"


def test_a_upc_a_and_its_ean_13_are_the_same_gtin() -> None:
    assert normalised("gtin", "036000291452") == normalised("gtin", "0036000291452")


def test_a_swap_of_two_neighbouring_digits_is_caught() -> None:
    with pytest.raises(InvalidField):
        normalised("gtin", "4006381339331")  # ...333931 with 3 and 9 swapped


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("40063813339", "must be 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14) digits"),
        ("1234567", "must be 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14) digits"),
        ("400638133393112", "must be 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14) digits"),
        ("4006381 33393", "a GTIN holds digits only"),
        ("40063813339３1", "a GTIN holds digits only"),  # a full-width digit
        ("", "a GTIN holds digits only"),
        ("00000000", "is all zeros, not a GTIN"),
        (4006381333931, "must be a string of digits (a GTIN)"),
        (None, "must be a string of digits (a GTIN)"),
    ],
)
def test_what_is_no_gtin_is_refused_naming_field_and_value(value: object, reason: str) -> None:
    with pytest.raises(InvalidField) as refused:
        normalised("gtin", value)
    assert (refused.value.field, refused.value.value, refused.value.reason) == (
        "gtin",
        value,
        reason,
    )


def test_optional_lets_none_through() -> None:
    assert optional("gtin", None) is None
    assert optional("gtin", "73513537") == "00000073513537"
