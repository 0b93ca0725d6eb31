"""The values that cross the store port: events to append, recorded events, receipts."""

from __future__ import annotations

import builtins
import uuid as uuid_module
from typing import Any, Final, TypeVar

import msgspec

from tillflow.engine.ids import format_id

ANY_VERSION: Final = -1
"""``expected_version`` meaning "append at the end, whatever the stream's version is"."""

T = TypeVar("T")

NO_STREAM: Final = 0
"""``expected_version`` meaning "the stream must not exist yet"."""

MAX_TYPE_LENGTH: Final = 200
MAX_STREAM_LENGTH: Final = 500


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event to append. ``data`` is anything msgspec can encode (a dict, a Struct...).

    ``id`` is the idempotency key: appending an event whose id is already recorded with the
    same stream, type and data returns the original receipt. Left ``None``, a fresh
    time-ordered id is made at append.
    """

    type: str
    data: Any = None
    id: bytes | None = None
    schema_version: int = 1
    causation_id: bytes | None = None
    correlation_id: bytes | None = None


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as the store recorded it.

    ``position`` is dense and in commit order within ``lane``; ``version`` counts the events
    of ``stream`` from 1. ``data`` holds the JSON encoding; :meth:`payload` decodes it.
    ``recorded_at`` is Unix seconds of the committing transaction.
    """

    id: bytes
    stream: str
    version: int
    lane: int
    position: int
    type: str
    schema_version: int
    data: bytes
    recorded_at: float
    causation_id: bytes | None
    correlation_id: bytes | None

    def payload(self) -> Any:
        """The decoded data (dicts, lists, str, int, float, bool, None)."""
        return msgspec.json.decode(self.data)

    def decode(self, as_type: builtins.type[T]) -> T:
        """The data decoded and validated as ``as_type`` (a msgspec Struct, dataclass...)."""
        return msgspec.json.decode(self.data, type=as_type)

    @property
    def uuid(self) -> uuid_module.UUID:
        """The id as a ``uuid.UUID``."""
        return uuid_module.UUID(bytes=self.id)

    def describe(self) -> str:
        """One line for people: type, id, stream@version, lane:position."""
        return (
            f"{self.type} {format_id(self.id)} {self.stream}@{self.version} "
            f"lane {self.lane} position {self.position}"
        )


class Receipt(msgspec.Struct, frozen=True):
    """What an append returns: per lane the last position written, per stream its version.

    Wait on it with ``Runtime.wait_for(receipt, processors, timeout)`` for read-your-writes.
    """

    positions: dict[int, int]
    streams: dict[str, int]

    def merge(self, other: Receipt) -> Receipt:
        """A receipt covering both (the later position per lane, the later version per stream)."""
        positions = dict(self.positions)
        for lane, position in other.positions.items():
            positions[lane] = max(position, positions.get(lane, 0))
        streams = dict(self.streams)
        for stream, version in other.streams.items():
            streams[stream] = max(version, streams.get(stream, 0))
        return Receipt(positions=positions, streams=streams)
