"""Receipts as opaque, URL-safe tokens: what write endpoints and commands hand out, and
what ``?wait_for=`` takes back for read-your-writes.

A token is the base64url (no padding) of ``lane:position`` pairs, e.g. ``MDoxMg`` for
``0:12``. Only positions travel: they are all a wait needs.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from tillflow.engine import Receipt
from tillflow.shop.errors import InvalidField

_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{1,4096}")
_PAIR: Final = re.compile(r"(\d{1,6}):(\d{1,18})")
PATTERN: Final = "^[A-Za-z0-9_-]{1,4096}$"


def encode_receipt(receipt: Receipt) -> str:
    """``{0: 12, 1: 5}`` → base64url (no padding) of ``0:12,1:5``."""
    text = ",".join(f"{lane}:{position}" for lane, position in sorted(receipt.positions.items()))
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_receipt(token: str, field: str = "wait_for") -> Receipt:
    """The receipt a token stands for (positions only). Raises :class:`InvalidField`."""
    if not _TOKEN.fullmatch(token):
        raise InvalidField(field, token, "not a receipt token")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidField(field, token, "not a receipt token") from None
    positions: dict[int, int] = {}
    for pair in text.split(","):
        match = _PAIR.fullmatch(pair)
        if match is None:
            raise InvalidField(field, token, "not a receipt token")
        positions[int(match.group(1))] = int(match.group(2))
    return Receipt(positions=positions, streams={})
