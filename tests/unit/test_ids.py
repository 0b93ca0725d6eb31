"""Event ids: the quick paths of ``format_id`` and ``id_from_key`` say what ``uuid`` says."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tillflow.engine.ids import format_id, id_from_key


@given(st.binary(min_size=16, max_size=16))
def test_format_id_is_the_uuid_text(event_id: bytes) -> None:
    assert format_id(event_id) == str(uuid.UUID(bytes=event_id))


@pytest.mark.parametrize("event_id", [b"", b"short", b"x" * 17])
def test_format_id_refuses_what_is_not_16_bytes(event_id: bytes) -> None:
    with pytest.raises(ValueError, match="16"):
        format_id(event_id)


@given(st.text())
def test_a_key_that_is_no_uuid_gets_uuid5_of_its_name(key: str) -> None:
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"tillflow:checkout:{key}").bytes
    try:
        uuid.UUID(key)
    except ValueError:
        assert id_from_key("checkout", key) == expected


@given(st.uuids())
def test_a_uuid_key_keeps_its_first_eight_bytes_in_any_case(key: uuid.UUID) -> None:
    text = str(key)
    assert id_from_key("checkout", text)[:8] == key.bytes[:8]
    assert id_from_key("checkout", text.upper())[:8] == key.bytes[:8]


@pytest.mark.parametrize(
    "key",
    [
        "{01a248d2-5a98-7000-8000-0c87f6a98cb0}",
        "urn:uuid:01a248d2-5a98-7000-8000-0c87f6a98cb0",
        "01a248d25a98700080000c87f6a98cb0",
        "01a248d2-5a98-7000-8000-0c87f6a98cb ",  # a space where a digit goes
        "01a248d2-5a98-7000-8000-0c87f6a98cbg",  # not hex
        "01a248d2 5a98-7000-8000-0c87f6a98cb0",
        "01a248d2-5a98-7000-8000-0c87f6a9  cb",  # bytes.fromhex skips spaces: 15 bytes
        "0_a248d2-5a98-7000-8000-0c87f6a98cb0",  # int() would take the underscore
        "０1a248d2-5a98-7000-8000-0c87f6a98cb0",  # a full-width digit
        "till-7:checkout-42",
        "",
    ],
)
def test_odd_keys_get_the_ids_uuid_parsing_gives(key: str) -> None:
    try:
        prefix: bytes | None = uuid.UUID(key).bytes[:8]
    except ValueError:
        prefix = None
    made = id_from_key("checkout", key)
    if prefix is None:
        assert made == uuid.uuid5(uuid.NAMESPACE_URL, f"tillflow:checkout:{key}").bytes
    else:
        assert made[:8] == prefix
