"""Idempotency keys over HTTP: a command's key comes in its body (``checkout_id``,
``delivery_id``...) or in the ``Idempotency-Key`` header; sent both ways, they must agree."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from tillflow.http.schemas import Identifier
from tillflow.shop.errors import InvalidField

IdempotencyKey = Annotated[
    Identifier | None,
    Header(
        alias="Idempotency-Key",
        description="The idempotency key, when the body does not carry the id.",
    ),
]


def optional_key(field: str, in_body: str | None, in_header: str | None) -> str | None:
    """The key from the body or the header (``None`` if neither); :class:`InvalidField`
    naming ``field`` when both are sent and differ."""
    if in_body is not None and in_header is not None and in_body != in_header:
        raise InvalidField(
            field, in_body, "must equal the Idempotency-Key header when both are sent"
        )
    return in_body if in_body is not None else in_header


def required_key(field: str, in_body: str | None, in_header: str | None) -> str:
    """As :func:`optional_key`, and :class:`InvalidField` when neither is sent."""
    key = optional_key(field, in_body, in_header)
    if key is None:
        raise InvalidField(field, None, "required (or send an Idempotency-Key header)")
    return key
