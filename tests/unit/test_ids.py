"""Event ids: the quick paths of ``format_id`` and ``id_from_key`` say what ``uuid`` says."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tillflow.engine.ids import (
    EMITTER_PREFIX,
    MAX_EMITS_PER_EVENT,
    derived_event_id,
    derived_id_at,
    derived_id_base,
    emitter_prefix,
    format_id,
    id_from_key,
)


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


def _derived_as_specified(processor: str, source_id: bytes, index: int) -> bytes:
    """The derived id's layout, spelled out bit by bit: six bytes of the source, a hash of
    source and processor with version 8 and the RFC 4122 variant set in it, the index."""
    digest = hashlib.blake2b(source_id + processor.encode(), digest_size=8).digest()
    value = int.from_bytes(source_id[:6] + digest + b"\0\0", "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return (value | index).to_bytes(16, "big")


@given(
    st.text(min_size=1, max_size=100),
    st.binary(min_size=16, max_size=16),
    st.integers(0, MAX_EMITS_PER_EVENT - 1),
)
def test_derived_ids_keep_their_layout(processor: str, source_id: bytes, index: int) -> None:
    """Recorded derived ids are found again by their prefix: the layout never changes."""
    expected = _derived_as_specified(processor, source_id, index)
    assert derived_event_id(processor, source_id, index) == expected
    assert derived_id_at(derived_id_base(processor, source_id), index) == expected
    assert emitter_prefix(processor, source_id) == expected[:EMITTER_PREFIX]
    assert uuid.UUID(bytes=expected).version == 8


def test_a_derived_index_is_two_bytes() -> None:
    base = derived_id_base("inventory", bytes(16))
    with pytest.raises(ValueError, match="at most"):
        derived_id_at(base, MAX_EMITS_PER_EVENT)


@given(st.uuids(), st.sampled_from(["checkout", "return"]))
def test_a_uuid_key_ends_in_a_hash_of_its_name(key: uuid.UUID, namespace: str) -> None:
    """Recorded ids from keys are found again by key: their layout never changes."""
    name = f"tillflow:{namespace}:{key}".encode()
    digest = bytearray(hashlib.blake2b(name, digest_size=8).digest())
    digest[0] = 0x80 | (digest[0] & 0x3F)  # RFC 4122 variant
    assert id_from_key(namespace, str(key)) == key.bytes[:8] + digest
