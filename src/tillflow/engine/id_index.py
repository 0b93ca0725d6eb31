"""An index of 16-byte event ids without a Python object per entry (for packed events).

A ``dict[bytes, int]`` costs ~140 bytes per id once the id's bytes object is its own (the
event it came with packed away); this table keeps each id in one ``bytearray`` (16 bytes),
its reference in an ``array`` (4 bytes, 8 past 2**32), its hash in another (8 bytes: growing
the table places every id again without hashing it again, and a probe compares hashes
before ids) and finds it by open addressing over an ``array`` of entry numbers (at most half
full: 8 to 16 bytes per id). Ids arrive in bulk, a window of packed events at a time
(:meth:`IdIndex.add_many`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
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

    Contract: each id is added once (the store checks first); :meth:`get` returns the
    reference added with ``event_id`` or ``None``; :meth:`any_of` whether any of the ids
    was added.
    """

    __slots__ = ("_hashes", "_ids", "_mask", "_refs", "_slots")

    def __init__(self) -> None:
        self._ids = bytearray()
        self._hashes: array[int] = array("q")
        self._refs: array[int] = array("I")
        self._slots = _table(_FIRST_CAPACITY, 0)
        self._mask = _FIRST_CAPACITY - 1

    def __len__(self) -> int:
        return len(self._refs)

    def get(self, event_id: bytes) -> int | None:
        """The reference of ``event_id``, or ``None`` if it was never added."""
        entry = self._entry(event_id)
        return self._refs[entry - 1] if entry else None

    def any_of(self, event_ids: Iterable[bytes]) -> bool:
        """Whether any of ``event_ids`` was added (one call for a batch of ids)."""
        if not self._refs:
            return False
        slots, mask, entry_of = self._slots, self._mask, self._entry
        # an empty first slot settles most ids without a call
        return any(slots[hash(event_id) & mask] and entry_of(event_id) for event_id in event_ids)

    def _entry(self, event_id: bytes) -> int:
        """The entry number of ``event_id`` (from 1), or 0."""
        slots, hashes, mask = self._slots, self._hashes, self._mask
        wanted = hash(event_id)
        slot = wanted & mask
        entry = slots[slot]
        while entry:
            if hashes[entry - 1] == wanted:
                start = (entry - 1) * ID_SIZE
                if self._ids[start : start + ID_SIZE] == event_id:
                    return entry
            slot = (slot + 1) & mask
            entry = slots[slot]
        return 0

    def add(self, event_id: bytes, ref: int) -> None:
        """Index ``event_id`` (16 bytes, not yet indexed) as ``ref``."""
        self.add_many([event_id], [ref])

    def add_many(self, event_ids: list[bytes], refs: Sequence[int]) -> None:
        """Index each of ``event_ids`` (not yet indexed) as the ``refs`` in the same order
        (one each)."""
        if not event_ids:
            return
        added = array(self._refs.typecode, [])
        try:
            added.extend(refs)
        except OverflowError:  # a reference past 32 bits: all of them 8 bytes from now on
            added = array("Q", refs)
        if added.typecode != self._refs.typecode:
            self._refs = array("Q", self._refs)
        entry = len(self._refs)
        if (entry + len(event_ids)) * 2 > len(self._slots):
            self._grow(entry + len(event_ids))
        self._ids += b"".join(event_ids)
        self._refs.extend(added)
        hashes = [hash(event_id) for event_id in event_ids]
        self._hashes.extend(hashes)
        self._place(hashes, entry + 1)

    def _place(self, hashes: Iterable[int], entry: int) -> None:
        """Put entries ``entry``, ``entry + 1``... (with these hashes) in free slots."""
        slots, mask = self._slots, self._mask
        for hashed in hashes:
            slot = hashed & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = entry
            entry += 1

    def _grow(self, entries: int) -> None:
        """Slots for ``entries`` at most half full (doubling), every id placed again
        (amortised: ~0.15 µs per id added)."""
        capacity = len(self._slots)
        while entries * 2 > capacity:
            capacity *= 2
        self._slots, self._mask = _table(capacity, entries), capacity - 1
        self._place(self._hashes, 1)
