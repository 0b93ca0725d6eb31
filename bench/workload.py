"""The events every case writes, and the truth the chain's views must add up to.

The log is a fixed pattern of ``PERIOD`` events repeated: three in four are ``Sold`` (a till
sold ``qty`` of ``sku``), one in four is ``Noted`` (a till note). Events are built once and
reused (their ids are left ``None``, so the store gives each append a fresh id), which keeps
the producer's own cost out of what is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from tillflow.engine import NewEvent

SOLD: Final = "Sold"
NOTED: Final = "Noted"
SKU_COUNT: Final = 16
BULK_QUANTITY: Final = 3
"""The ``bulk`` processor only adds up sales of at least this many units."""
PERIOD: Final = 80
"""The pattern repeats every ``PERIOD`` events (lcm of 4 kinds, 16 skus, 5 quantities)."""


class Sale(msgspec.Struct):
    """The part of a ``Sold`` event's data the processors read."""

    sku: str
    qty: int


def _shape(index: int) -> tuple[str, str, int]:
    kind = NOTED if index % 4 == 3 else SOLD
    return kind, f"sku-{(index * 7) % SKU_COUNT:02d}", 1 + index % 5


def _event(index: int) -> NewEvent:
    kind, sku, qty = _shape(index)
    till = index % 8
    if kind == SOLD:
        return NewEvent(SOLD, {"till": till, "sku": sku, "qty": qty, "price": 1.25 * qty})
    return NewEvent(NOTED, {"till": till, "text": "drawer opened"})


_PATTERN: Final = tuple(_event(index) for index in range(PERIOD))


def events(start: int, count: int) -> list[NewEvent]:
    """The events at log indexes ``start .. start + count - 1``."""
    return [_PATTERN[index % PERIOD] for index in range(start, start + count)]


def stream_name(prefix: str, number: int) -> str:
    """Zero-padded, so that new streams sort after old ones (index inserts at the end)."""
    return f"{prefix}-{number:08d}"


@dataclass(frozen=True)
class Truth:
    """What ``count`` events of the pattern add up to."""

    events: int
    sold: dict[str, int]
    """``Sold`` events per sku (the ``tally`` view)."""
    bulk: dict[str, int]
    """Units of sales of at least ``BULK_QUANTITY`` per sku (the ``bulk`` view)."""
    notes: int
    """``Noted`` events (the ``audit`` view)."""


def _tally(indexes: range, times: int, sold: dict[str, int], bulk: dict[str, int]) -> int:
    notes = 0
    for index in indexes:
        kind, sku, qty = _shape(index)
        if kind == NOTED:
            notes += times
            continue
        sold[sku] = sold.get(sku, 0) + times
        if qty >= BULK_QUANTITY:
            bulk[sku] = bulk.get(sku, 0) + qty * times
    return notes


def truth(count: int) -> Truth:
    """The truth for the first ``count`` events, in O(``PERIOD``) time."""
    periods, rest = divmod(count, PERIOD)
    sold: dict[str, int] = {}
    bulk: dict[str, int] = {}
    notes = _tally(range(PERIOD), periods, sold, bulk) if periods else 0
    notes += _tally(range(rest), 1, sold, bulk)
    return Truth(count, sold, bulk, notes)
