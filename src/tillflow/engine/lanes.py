"""Lanes: a stable partition of streams. A stream's events always go to the same lane, so the
order of one stream's events is the order of its lane. Stable across processes and machines
(it does not use Python's randomised ``hash``)."""

from __future__ import annotations

import zlib


def lane_of(stream: str, lane_count: int) -> int:
    """The lane (0 .. lane_count-1) that ``stream`` belongs to."""
    if lane_count == 1:
        return 0
    return zlib.crc32(stream.encode()) % lane_count
