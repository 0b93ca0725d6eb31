"""One lane of the memory store: recent events as objects, older ones packed.

The newest events (at least ``hot`` of them) stay :class:`RecordedEvent` objects, so the
processors reading behind the head get them without any decoding. Older events are packed
``window`` at a time into zstd-compressed msgpack blocks (~60-85 bytes per shop event
instead of ~700 as objects): within a window, a stream with at least
:data:`OWN_BLOCK` events gets a block of its own, the rest share one. So reading a long
stream from its start decodes that stream's blocks only, not the whole log, and reading the
lane in order decodes each window once. A few decoded windows and blocks are kept.

Packing runs in a short-lived thread of its own (~0.8 µs per event, most of it zstd, which
lets go of the interpreter lock while it compresses; zlib took ~2.5 µs); the packed window
replaces its objects at a later append once ready (and ``on_pack`` is told which events
left the objects). Until then the objects serve every read: nothing is visible twice or
missing.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Final

import msgspec
import zstandard

from tillflow.engine.types import RecordedEvent

HOT_EVENTS: Final = 65_536
WINDOW_EVENTS: Final = 8192
OWN_BLOCK: Final = 8
"""Events of one stream within a window that earn it a block of its own."""
DECODED_WINDOWS: Final = 2
DECODED_BLOCKS: Final = 16
COMPRESSION_LEVEL: Final = 1

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(list[RecordedEvent])
_position: Final = attrgetter("position")


def _pack(events: list[RecordedEvent], compressor: zstandard.ZstdCompressor) -> bytes:
    """Encoded as they are, which holds the interpreter lock least (~0.2 µs per event;
    columns compress ~12 % smaller but take twice as long to build and encode)."""
    packed = compressor.compress(_encoder.encode(events))
    return bytes(memoryview(packed))  # its own size: zstd's bytes keeps the bound allocated


def _unpack(block: bytes, decompressor: zstandard.ZstdDecompressor) -> list[RecordedEvent]:
    return _decoder.decode(decompressor.decompress(block))


class _Window:
    """``window`` consecutive rows, packed: ``blocks[own[stream]]`` holds every event of a
    stream with a block of its own (version order), ``blocks[-1]`` the others (row order)."""

    __slots__ = ("blocks", "own")

    def __init__(self, blocks: list[bytes], own: dict[str, int]) -> None:
        self.blocks = blocks
        self.own = own


class _Packing:
    """One window being packed by a thread; ``window`` once done."""

    __slots__ = ("thread", "window")

    def __init__(self, events: list[RecordedEvent]) -> None:
        self.window: _Window | None = None
        self.thread = threading.Thread(
            target=self._run, args=(events,), name="tillflow:pack", daemon=True
        )
        self.thread.start()

    def _run(self, events: list[RecordedEvent]) -> None:
        self.window = _pack_window(events)


def _pack_window(events: list[RecordedEvent]) -> _Window:
    """Group ``events`` (one window, row order) into blocks: a stream's own, and the rest."""
    groups: dict[str, list[RecordedEvent]] = {}
    for event in events:
        group = groups.get(event.stream)
        if group is None:
            groups[event.stream] = [event]
        else:
            group.append(event)
    blocks: list[bytes] = []
    own: dict[str, int] = {}
    shared: list[RecordedEvent] = []
    compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)  # one thread's own
    for stream, group in groups.items():
        if len(group) >= OWN_BLOCK:
            own[stream] = len(blocks)
            blocks.append(_pack(group, compressor))
        else:
            shared += group
    shared.sort(key=_position)
    blocks.append(_pack(shared, compressor))
    return _Window(blocks, own)


class LaneLog:
    """The events of one lane by row (row = position - 1). Not thread-safe (the store
    holds its lock).

    Contract: :meth:`get`, :meth:`slice` and :meth:`of_stream` return the events
    :meth:`extend` was given, in row order, whether they are still objects or packed.
    ``on_pack(events)`` is called (under the caller's lock, from :meth:`extend` or
    :meth:`settle`) with each window's events just before they stop being objects.
    """

    __slots__ = (
        "_blocks",
        "_decompressor",
        "_hot",
        "_hot_limit",
        "_length",
        "_on_pack",
        "_packed",
        "_packing",
        "_wholes",
        "_window",
        "_windows",
    )

    def __init__(
        self,
        hot: int = HOT_EVENTS,
        window: int = WINDOW_EVENTS,
        on_pack: Callable[[list[RecordedEvent]], object] | None = None,
    ) -> None:
        if hot < 0 or window < 1:
            raise ValueError("hot must be ≥ 0 and window ≥ 1")
        self._on_pack = on_pack
        self._hot: list[RecordedEvent] = []
        self._length = 0
        """Rows: one attribute, so that a reader without the lock (the store's ``head``)
        never sees a window between leaving the objects and joining the packed rows."""
        self._hot_limit = hot
        self._window = window
        self._windows: list[_Window] = []
        self._packed = 0
        """Rows packed into :attr:`_windows` (a multiple of the window)."""
        self._wholes: OrderedDict[int, list[RecordedEvent]] = OrderedDict()
        """Decoded windows, in row order."""
        self._blocks: OrderedDict[tuple[int, int], list[RecordedEvent]] = OrderedDict()
        """Decoded blocks by (window, block)."""
        self._packing: _Packing | None = None
        self._decompressor = zstandard.ZstdDecompressor()

    def __len__(self) -> int:
        return self._length

    def extend(self, events: list[RecordedEvent]) -> None:
        """Add the next rows."""
        self._hot += events
        self.grew(len(events))

    def appender(self) -> Callable[[RecordedEvent], None]:
        """A function adding the next row (valid for the log's life; the writer's quick
        way to add rows one by one): call :meth:`grew` once done."""
        return self._hot.append

    def grew(self, count: int) -> None:
        """Count ``count`` rows added through :meth:`appender`; once more than ``hot`` + a
        window are objects, the oldest window is packed (in a thread; installed by a later
        call once ready)."""
        hot = self._hot
        self._length += count
        if len(hot) >= self._hot_limit + self._window:
            packing = self._packing
            if packing is None:
                self._packing = _Packing(hot[: self._window])
            elif packing.window is not None:
                self._install(packing.window)

    def settle(self) -> None:
        """Pack every window due, waiting for each (measurements, tests)."""
        while True:
            packing = self._packing
            if packing is not None:
                packing.thread.join()
                if packing.window is None:  # the thread failed (and said so): stay objects
                    return
                self._install(packing.window)
            if len(self._hot) < self._hot_limit + self._window:
                return
            self._packing = _Packing(self._hot[: self._window])

    def _install(self, window: _Window) -> None:
        if self._on_pack is not None:
            self._on_pack(self._hot[: self._window])
        self._windows.append(window)
        del self._hot[: self._window]
        self._packed += self._window
        self._packing = None

    def get(self, row: int) -> RecordedEvent:
        """The event at ``row`` (0 ≤ row < len)."""
        if row >= self._packed:
            return self._hot[row - self._packed]
        number, offset = divmod(row, self._window)
        return self._whole(number)[offset]

    def slice(self, start: int, end: int) -> list[RecordedEvent]:
        """The events of rows ``start`` ≤ row < ``end``, clipped to what exists."""
        start, end = max(start, 0), min(end, len(self))
        if start >= end:
            return []
        packed = self._packed
        if start >= packed:
            return self._hot[start - packed : end - packed]
        found: list[RecordedEvent] = []
        row, stop = start, min(end, packed)
        while row < stop:
            number, offset = divmod(row, self._window)
            taken = self._whole(number)[offset : offset + stop - row]
            found += taken
            row += len(taken)
        if end > packed:
            found += self._hot[: end - packed]
        return found

    def of_stream(self, stream: str, rows: Sequence[int]) -> list[RecordedEvent]:
        """The events of ``stream`` at ``rows`` (ascending, all of that stream)."""
        found: list[RecordedEvent] = []
        packed, size = self._packed, self._window
        index = 0
        while index < len(rows) and rows[index] < packed:
            number = rows[index] // size
            end = bisect.bisect_left(rows, (number + 1) * size, index)
            wanted = set(rows[index:end])
            window = self._windows[number]
            block = window.own.get(stream, len(window.blocks) - 1)
            found += [
                event
                for event in self._block(number, block)
                if event.position - 1 in wanted and event.stream == stream
            ]
            index = end
        if packed:
            found += [self._hot[row - packed] for row in rows[index:]]
        else:  # nothing packed yet (every simulation, most tests): rows are list indexes
            found += map(self._hot.__getitem__, rows[index:])
        return found

    def _whole(self, number: int) -> list[RecordedEvent]:
        wholes = self._wholes
        events = wholes.get(number)
        if events is not None:
            wholes.move_to_end(number)
            return events
        events = []
        for block in self._windows[number].blocks:
            events += _unpack(block, self._decompressor)
        events.sort(key=_position)
        wholes[number] = events
        if len(wholes) > DECODED_WINDOWS:
            wholes.popitem(last=False)
        return events

    def _block(self, number: int, block: int) -> list[RecordedEvent]:
        whole = self._wholes.get(number)
        if whole is not None:
            return whole
        blocks, key = self._blocks, (number, block)
        events = blocks.get(key)
        if events is not None:
            blocks.move_to_end(key)
            return events
        events = _unpack(self._windows[number].blocks[block], self._decompressor)
        blocks[key] = events
        if len(blocks) > DECODED_BLOCKS:
            blocks.popitem(last=False)
        return events

    def packed_bytes(self) -> int:
        """Bytes of the packed blocks (for measurements)."""
        return sum(len(block) for window in self._windows for block in window.blocks)
