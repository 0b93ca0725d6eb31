"""An index of 16-byte event ids without a Python object per entry.

A ``dict[bytes, int]`` costs ~140 bytes per id (a bytes object, an int and the dict's entry);
this table keeps each id in one ``bytearray`` (16 bytes), its reference in an ``array``
(4 bytes, 8 past 2**32) and finds it by open addressing over an ``array`` of entry numbers
(at most half full: 8 to 16 bytes per id).
"""

from __future__ import annotations

from array import array
from typing import Final

ID_SIZE: Final = 16
_FIRST_CAPACITY: Final = 1024
_SMALL_LIMIT: Final = 2**32 - 2
"""The largest value an ``array('I')`` slot holds (entry + 1), or a reference."""


def _table(capacity: int, entries: int) -> array[int]:
    """Empty slots: 4 bytes each while entry numbers fit, else 8."""
    typecode = "I" if entries < _SMALL_LIMIT else "Q"
    return array(typecode, bytes(capacity * array(typecode).itemsize))


class IdIndex:
    """Id → non-negative int reference. Not thread-safe (the store holds its lock).

    Contract: :meth:`add` is given each id once (the store checks :meth:`get` first);
    :meth:`get` returns the reference added with ``event_id`` or ``None``.
    """

    __slots__ = ("_ids", "_mask", "_refs", "_slots")

    def __init__(self) -> None:
        self._ids = bytearray()
        self._refs: array[int] = array("I")
        self._slots = _table(_FIRST_CAPACITY, 0)
        self._mask = _FIRST_CAPACITY - 1

    def __len__(self) -> int:
        return len(self._refs)

    def get(self, event_id: bytes) -> int | None:
        """The reference of ``event_id``, or ``None`` if it was never added."""
        slots, ids, mask = self._slots, self._ids, self._mask
        slot = hash(event_id) & mask
        entry = slots[slot]
        while entry:
            start = (entry - 1) * ID_SIZE
            if ids[start : start + ID_SIZE] == event_id:
                return self._refs[entry - 1]
            slot = (slot + 1) & mask
            entry = slots[slot]
        return None

    def add(self, event_id: bytes, ref: int) -> None:
        """Index ``event_id`` (16 bytes, not yet indexed) as ``ref``."""
        refs = self._refs
        if ref >= _SMALL_LIMIT and refs.typecode == "I":
            refs = self._refs = array("Q", refs)
        self._ids += event_id
        refs.append(ref)
        entry = len(refs)
        slots = self._slots
        if entry * 2 > len(slots):
            self._grow()
            return
        mask = self._mask
        slot = hash(event_id) & mask
        while slots[slot]:
            slot = (slot + 1) & mask
        slots[slot] = entry

    def _grow(self) -> None:
        """Twice the slots, every id placed again (amortised: ~0.3 µs per id added)."""
        capacity = len(self._slots) * 2
        slots = _table(capacity, len(self._refs))
        mask = capacity - 1
        ids = self._ids
        for entry in range(1, len(self._refs) + 1):
            start = (entry - 1) * ID_SIZE
            slot = hash(bytes(ids[start : start + ID_SIZE])) & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = entry
        self._slots, self._mask = slots, mask
