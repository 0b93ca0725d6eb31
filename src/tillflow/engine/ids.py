"""Event ids: 16 bytes, time-ordered (UUIDv7 layout) so that B-tree inserts land at the end.

Ids are raw ``bytes`` inside the engine (building ``uuid.UUID`` objects costs ~0.6 µs each,
more than a whole event's bookkeeping); :func:`format_id` renders one for people.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
import uuid
from typing import Final

_counter = itertools.count()
_lock = threading.Lock()
_node = int.from_bytes(os.urandom(4), "big")
_pid = os.getpid()


def _reseed_after_fork() -> None:
    global _node, _pid, _counter  # noqa: PLW0603
    _node = int.from_bytes(os.urandom(4), "big")
    _pid = os.getpid()
    _counter = itertools.count()


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_event_id() -> bytes:
    """A fresh id: 48 bits of Unix milliseconds, then a random per-process node and a counter.

    Ids made in one process are strictly increasing within a millisecond; ids of different
    processes differ in their random 32-bit node.
    """
    millis = time.time_ns() // 1_000_000
    with _lock:
        count = next(_counter) & 0x3FFFFFFFFF  # 38 bits
    # layout: 48 ms | 4 version(7) | 12 high count | 2 variant | 26 low count | 32 node + 4 pad
    high = (count >> 26) & 0xFFF
    low = count & 0x3FFFFFF
    value = (millis << 80) | (0x7 << 76) | (high << 64) | (0b10 << 62) | (low << 36)
    value |= (_node & 0xFFFFFFFF) << 4
    return value.to_bytes(16, "big")


MAX_EMITS_PER_EVENT = 65_536
EMITTER_PREFIX = 14
"""Derived ids of one (processor, source) share their first 14 bytes; the last 2 count."""


def derived_id_base(processor: str, source_id: bytes) -> bytes:
    """The part of every id ``processor`` derives from ``source_id`` (one hash per source):
    its first :data:`EMITTER_PREFIX` bytes, which :func:`emitter_prefix` names too."""
    hasher = _BLAKE2B_8.copy()  # of source id, then name: ~0.2 µs quicker than a new one
    hasher.update(source_id)
    hasher.update(processor.encode())
    digest = hasher.digest()
    # the digest's first byte carries version 8 (custom), its third the RFC 4122 variant
    return source_id[:6] + _VERSION_8[digest[0]] + digest[1:2] + _VARIANT[digest[2]] + digest[3:]


_BLAKE2B_8: Final = hashlib.blake2b(digest_size=8)
"""Never updated: each derived id base hashes a copy."""
_VERSION_8: Final = [bytes((0x80 | (byte & 0x0F),)) for byte in range(256)]
_VARIANT: Final = [bytes((0x80 | (byte & 0x3F),)) for byte in range(256)]


def derived_event_id(processor: str, source_id: bytes, index: int) -> bytes:
    """The deterministic id of the ``index``-th event a processor emits while handling
    ``source_id``: redelivering the source can only ever produce the same ids.

    Six bytes of the source's timestamp (so derived ids stay time-ordered), a hash of
    processor and source, and the index in the last two bytes.
    """
    return derived_id_at(derived_id_base(processor, source_id), index)


def derived_id_at(base: bytes, index: int) -> bytes:
    """The ``index``-th id of a :func:`derived_id_base`."""
    if not 0 <= index < MAX_EMITS_PER_EVENT:
        raise ValueError(f"a handler may emit at most {MAX_EMITS_PER_EVENT} events per event")
    return base + index.to_bytes(2, "big")


def id_from_key(namespace: str, key: str) -> bytes:
    """A deterministic id for an idempotency key of the caller's (e.g. a checkout id).

    When the key is itself a UUID (tills are advised to use time-ordered UUIDv7 keys), the
    id keeps its first eight bytes, so ids stay in time order and index inserts stay cheap;
    the rest is a hash of namespace and key, so one key in two namespaces gives two ids.
    """
    name = f"tillflow:{namespace}:{key}"
    try:
        prefix = _uuid_bytes(key)[:8]
    except ValueError:
        return _uuid5_bytes(name)
    hasher = _BLAKE2B_8.copy()
    hasher.update(name.encode())
    digest = hasher.digest()
    return prefix + _VARIANT[digest[0]] + digest[1:]  # the digest's first byte: the variant


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def _uuid5_bytes(name: str) -> bytes:
    """``uuid.uuid5(uuid.NAMESPACE_URL, name).bytes`` without making ``UUID`` objects."""
    raw = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(raw)


def _uuid_bytes(text: str) -> bytes:
    """``uuid.UUID(text).bytes``, without its parsing for the canonical ``8-4-4-4-12``
    form (what tills send); ``ValueError`` for what is not a UUID."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        try:
            raw = bytes.fromhex(text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])
        except ValueError:
            raw = b""
        if len(raw) == 16:  # 32 hex digits: what uuid.UUID reads them as
            return raw
    return uuid.UUID(text).bytes


def format_id(event_id: bytes) -> str:
    """The canonical text form (``8-4-4-4-12`` hex) of an id (``ValueError`` unless 16
    bytes)."""
    if len(event_id) != 16:
        return str(uuid.UUID(bytes=event_id))  # raises, as it says why
    digits = event_id.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def parse_id(text: str | bytes | uuid.UUID) -> bytes:
    """Accept an id as text, ``uuid.UUID`` or 16 raw bytes; raise ``ValueError`` otherwise."""
    if isinstance(text, uuid.UUID):
        return text.bytes
    if isinstance(text, bytes):
        if len(text) != 16:
            raise ValueError(f"an event id is 16 bytes, got {len(text)}")
        return text
    return uuid.UUID(text).bytes


def emitter_prefix(processor: str, source_id: bytes) -> bytes:
    """The first bytes shared by every id ``processor`` derives from ``source_id``."""
    return derived_id_base(processor, source_id)
