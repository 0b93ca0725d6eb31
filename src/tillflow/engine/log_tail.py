"""Following a store's lanes up to marks that move forward: for checks that fold the log
up to a processor's checkpoints after every step of a run, reading each event once instead
of the whole log each time."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Final

from tillflow.engine.store import EventStore
from tillflow.engine.types import RecordedEvent

BATCH: Final = 10_000
"""Events read at a time (a first advance over a long log holds no more in memory)."""


def passed_by(store: EventStore, processor: str) -> dict[int, int]:
    """``processor``'s checkpoint on each lane of ``store``: the marks to follow it to."""
    return {lane: store.checkpoint(processor, lane) for lane in range(store.lane_count)}


class LogTail:
    """The events of each lane after what :meth:`advance` returned before, up to the new
    marks. A mark that moves back, or another store, starts over from the first event:
    ``advance`` then says so, and the caller starts its fold again.

    Sound because a store's recorded events never change: what was read stays as read.
    """

    def __init__(self, types: Collection[str] | None = None) -> None:
        self._types = types
        self._store: EventStore | None = None
        self._read: dict[int, int] = {}

    def advance(
        self, store: EventStore, upto: Mapping[int, int]
    ) -> tuple[bool, Iterator[RecordedEvent]]:
        """``(restarted, events)``: the events after the last marks up to ``upto`` (lane by
        lane, each lane in order, read :data:`BATCH` at a time: consume them all, the marks
        have moved); ``restarted`` when they begin from the first event."""
        restarted = store is not self._store or any(
            upto[lane] < self._read.get(lane, 0) for lane in upto
        )
        if restarted:
            self._store, self._read = store, {}
        spans = [(lane, self._read.get(lane, 0), mark) for lane, mark in upto.items()]
        self._read.update(upto)
        return restarted, self._events(store, spans)

    def _events(
        self, store: EventStore, spans: list[tuple[int, int, int]]
    ) -> Iterator[RecordedEvent]:
        for lane, start, mark in spans:
            after = start
            while after < mark:
                batch = store.read(lane, after, mark, types=self._types, limit=BATCH)
                if not batch:
                    break
                yield from batch
                after = batch[-1].position


class LastAnswer:
    """A check's last findings, kept with the inputs they were computed from (the
    checkpoints, the rows read): asked about the same inputs again, the same findings,
    not computed again. The inputs must determine the answer (with the store's recorded
    events, which never change): include the store itself."""

    def __init__(self) -> None:
        self._inputs: object = None
        self._found: list[str] = []

    def of(self, inputs: object, check: Callable[[], list[str]]) -> list[str]:
        """``check()``, or its last findings if ``inputs`` equal the last call's."""
        if self._inputs is None or inputs != self._inputs:
            self._found, self._inputs = check(), inputs
        return list(self._found)
