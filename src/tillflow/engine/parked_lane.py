"""One lane's parked keys at work: holding events behind them, parking, letting them go.

A :class:`LaneParking` belongs to a :class:`~tillflow.engine.lane_processor.LaneProcessor`
whose processor parks, or runs behind one that does. Per step it reads what only it cannot
know: the upstream processors' parked rows (after the barrier, so a park at or below the
upstream checkpoint it read is seen) and, while it has dead letters of its own, the
operators' requests. Per event it costs a key lookup, and only while something is parked.

Letting go (:meth:`LaneParking.settle`) handles a key's queue in order, one event per
commit, each commit carrying the lane's parked row as it is after that event, with the
checkpoint unchanged (the queue lies behind it). A failure there makes that event the
key's new head, with the rest still held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec

from tillflow.engine.errors import StoreUnavailable
from tillflow.engine.failure import Parking
from tillflow.engine.parking import (
    SKIPPED,
    DeadLetter,
    DeadLetterRequest,
    ParkedLane,
    dead_letter_stream,
    lane_row,
    parked_view,
    read_parked,
)
from tillflow.engine.processor import Processor, Session
from tillflow.engine.store import BatchEffects
from tillflow.engine.types import RecordedEvent

if TYPE_CHECKING:
    from tillflow.engine.lane_processor import LaneProcessor

KeyOf = Callable[[RecordedEvent], str]


class LaneParking:
    """The parked keys of one processor on one lane, with its upstreams' (see the module)."""

    def __init__(self, name: str, lane: int, own: Parking | None, upstream: dict[str, Parking]):
        self.name = name
        self.lane = lane
        self.own = own
        self.upstream = upstream
        self.view = parked_view(name)
        self.row_key = lane_row(lane)
        self.row: ParkedLane | None = None
        """As committed; ``None`` until read (again, after the lane was forgotten)."""
        self.upstream_rows: dict[str, ParkedLane] = {}
        keys: list[KeyOf] = [] if own is None else [own.key]
        for parking in upstream.values():
            if parking.key not in keys:
                keys.append(parking.key)
        self.keys = keys
        """Every key a letter of this lane can be filed under."""

    # -- per step --------------------------------------------------------------------------

    def committed(self, lane_processor: LaneProcessor) -> ParkedLane:
        """The lane's row as committed (read once after the lane was forgotten)."""
        if self.row is None:
            self.row = read_parked(lane_processor.store, self.name, self.lane)
        return self.row

    def refresh(self, lane_processor: LaneProcessor) -> None:
        """Read the upstream processors' parked rows; call after reading the barrier."""
        store = lane_processor.store
        self.upstream_rows = {name: read_parked(store, name, self.lane) for name in self.upstream}

    def step(self, lane_processor: LaneProcessor) -> Holding | None:
        """At the start of a step, after its barrier: read the upstream rows, let go what
        may go (:meth:`settle`), and say how the batch holds events (``None``: nothing is
        parked, every event is handled)."""
        self.refresh(lane_processor)
        self.settle(lane_processor)
        return self.holding(lane_processor)

    def holding(self, lane_processor: LaneProcessor) -> Holding | None:
        """A batch's holds on a copy of the committed row; ``None`` when nothing is parked."""
        if not self.active():
            return None
        return Holding(self, self.committed(lane_processor).copy())

    def active(self) -> bool:
        """Whether any key is parked here or upstream (events must be looked at)."""
        return bool(self.committed_letters()) or any(
            row.letters for row in self.upstream_rows.values()
        )

    def committed_letters(self) -> dict[str, DeadLetter]:
        return {} if self.row is None else self.row.letters

    def hold(self, event: RecordedEvent, working: ParkedLane) -> bool:
        """Whether ``event`` waits behind a parked key; if so, queue it in ``working``."""
        letters = working.letters
        for key_of in self.keys:
            letter = letters.get(key_of(event))
            if letter is not None:
                letter.held.append(event.position)
                return True
        for name, row in self.upstream_rows.items():
            if not row.letters:
                continue
            key = self.upstream[name].key(event)
            parked = row.letters.get(key)
            if parked is not None and event.position >= parked.position:
                letters[key] = DeadLetter.at(key, event, time.time(), behind=name)
                return True
        return False

    def effects(self, working: ParkedLane) -> BatchEffects:
        """Effects that write ``working`` as the lane's row."""
        return BatchEffects(views={(self.view, self.row_key): msgspec.json.encode(working)})

    # -- parking ---------------------------------------------------------------------------

    def park(
        self, lane_processor: LaneProcessor, event: RecordedEvent, error: BaseException
    ) -> None:
        """Commit ``event`` as parked (its key's head) with the checkpoint moved onto it."""
        assert self.own is not None
        working = self.committed(lane_processor).copy()
        key = self.own.key(event)
        working.letters[key] = DeadLetter.at(
            key, event, time.time(), attempts=lane_processor.attempts, error=error
        )
        lane_processor.commit_effects(event.position, self.effects(working), handled=0)
        self.row = working

    # -- letting go ------------------------------------------------------------------------

    def settle(self, lane_processor: LaneProcessor) -> None:
        """Let go what may go: keys an upstream no longer parks (up to where it does), and
        keys an operator asked to retry or skip. Raises :class:`StoreUnavailable` (and the
        store's conflicts) as a step does; handler failures are parked, not raised."""
        row = self.committed(lane_processor)
        if not row.letters:
            return
        for key, skip, before, seen in list(self._releases(lane_processor, row)):
            self._release(lane_processor, key, skip, before, seen)

    def _releases(
        self, lane_processor: LaneProcessor, row: ParkedLane
    ) -> Iterator[tuple[str, bool, int | None, int]]:
        """(key, skip the head, release only positions before this, requests seen)."""
        for key, letter in row.letters.items():
            if letter.behind is None:
                continue
            upstream = self.upstream_rows.get(letter.behind)
            parked = None if upstream is None else upstream.letters.get(key)
            if parked is None:
                yield key, False, None, row.seen
            elif parked.position > letter.position:
                yield key, False, parked.position, row.seen
        if not any(letter.behind is None for letter in row.letters.values()):
            return
        requests = lane_processor.store.read_stream(dead_letter_stream(self.name), row.seen)
        if not requests:
            return
        heads = {letter.event_id: key for key, letter in row.letters.items()}
        last = requests[-1].version
        for recorded in requests:  # others' lanes' are read again until this lane commits
            request = recorded.decode(DeadLetterRequest)
            key_found = heads.pop(request.event_id, None)
            if request.lane == self.lane and key_found is not None:
                yield key_found, recorded.type == SKIPPED, None, last

    def _release(
        self, lane_processor: LaneProcessor, key: str, skip: bool, before: int | None, seen: int
    ) -> None:
        store = lane_processor.store
        queue = self.committed(lane_processor).letters[key].queue()
        if skip:
            queue = queue[1:]
            if not queue:
                self._commit(lane_processor, self._queued(lane_processor, key, [], seen))
                return
        for index, position in enumerate(queue):
            if before is not None and position >= before:
                return
            rest = queue[index + 1 :]
            event = self._event(lane_processor, position)
            session = Session(
                store,
                self.name,
                cache=lane_processor.cache,
                batch=[event],
                known_rows=lane_processor.known_rows,
            )
            session.begin(event)
            try:
                lane_processor.processor.handler(event, session)
            except StoreUnavailable:
                lane_processor.drop_memory()
                self.row = None  # read again, as the checkpoint is
                raise
            except Exception as error:
                lane_processor.drop_memory()
                working = self._failed(key, event, error, rest, seen)
                lane_processor.failures += 1
                self._commit(lane_processor, working)
                return
            self._commit(lane_processor, self._queued(lane_processor, key, rest, seen), session)

    def _event(self, lane_processor: LaneProcessor, position: int) -> RecordedEvent:
        (event,) = lane_processor.store.read(self.lane, position - 1, position)
        return event

    def _commit(
        self, lane_processor: LaneProcessor, working: ParkedLane, session: Session | None = None
    ) -> None:
        """Commit ``working`` as the row (with ``session``'s effects), checkpoint unmoved."""
        effects = BatchEffects() if session is None else session.seal()
        effects.views[(self.view, self.row_key)] = msgspec.json.encode(working)
        lane_processor.commit_effects(None, effects, handled=0 if session is None else 1)
        self.row = working

    def _working(self, seen: int) -> ParkedLane:
        working = (self.row or ParkedLane()).copy()
        working.seen = max(working.seen, seen)
        return working

    def _queued(
        self, lane_processor: LaneProcessor, key: str, queue: list[int], seen: int
    ) -> ParkedLane:
        """The row with ``key``'s queue cut down to ``queue`` (gone when empty); a new head
        keeps its wait (``behind``) and has failed no attempt yet."""
        working = self._working(seen)
        letter = working.letters[key]
        if not queue:
            del working.letters[key]
        elif queue[0] != letter.position:
            head = self._event(lane_processor, queue[0])
            working.letters[key] = DeadLetter.at(
                key, head, letter.parked_at, held=queue[1:], behind=letter.behind
            )
        return working

    def _failed(
        self, key: str, event: RecordedEvent, error: BaseException, rest: list[int], seen: int
    ) -> ParkedLane:
        """The row with ``event`` as ``key``'s head, failed, and ``rest`` held behind."""
        working = self._working(seen)
        letter = working.letters[key]
        again = letter.position == event.position and letter.behind is None
        working.letters[key] = DeadLetter.at(
            key,
            event,
            letter.parked_at if again else time.time(),
            attempts=letter.attempts + 1 if again else 1,
            error=error,
            held=list(rest),
        )
        return working


class Holding:
    """One batch's holds: queued on a copy of the lane's row, written with the batch
    (:meth:`put`) and taken as committed once it is (:meth:`adopt`)."""

    def __init__(self, parking: LaneParking, working: ParkedLane) -> None:
        self.parking = parking
        self.working = working

    def hold(self, event: RecordedEvent) -> bool:
        """Whether ``event`` waits behind a parked key (then it is queued, not handled)."""
        return self.parking.hold(event, self.working)

    def put(self, session: Session) -> None:
        session.put(self.parking.view, self.parking.row_key, self.working)

    def adopt(self) -> None:
        self.parking.row = self.working


def attach_parking(lanes: dict[str, list[LaneProcessor]], processors: dict[str, Processor]) -> None:
    """Give each lane of a processor that parks, or runs behind one that does, its
    :class:`LaneParking`; the others keep none (and pay nothing)."""
    for name, lane_processors in lanes.items():
        declared = processors[name]
        upstream = {
            before: parking
            for before in declared.after
            if (parking := processors[before].parking) is not None
        }
        if declared.parking is None and not upstream:
            continue
        for lane_processor in lane_processors:
            lane_processor.parking = LaneParking(
                name, lane_processor.lane, declared.parking, upstream
            )
