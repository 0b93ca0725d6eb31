"""Moving one processor along one lane, one batch at a time.

:meth:`LaneProcessor.step` is synchronous and self-contained: the asyncio runtime calls it
in a worker thread, the simulator calls it directly in whatever order it chooses. Each step:

1. reads the barrier: ``min(head, checkpoint of every upstream processor)`` on the lane,
   from durable checkpoints, so it holds across threads, processes and restarts;
2. reads the events after its checkpoint up to the barrier (at most ``batch_size``
   positions), only of the types it wants;
3. calls the handler for each, through one :class:`Session`;
4. commits the effects and the new checkpoint in one transaction (compare-and-set on the
   old checkpoint).

If a handler raises, the effects of the events before it are committed with the checkpoint
just before the failing event, and :class:`HandlerFailed` is raised: nothing of the failing
event is written and nothing after it is passed. :class:`StoreUnavailable` (from a handler's
reads, or from the store itself) is no handler failure: it goes up as it is, nothing of the
batch is committed and the retry budget is untouched (:mod:`tillflow.engine.outage`).

A lane let go (:attr:`LaneProcessor.leased` false: a lease keeper handed it to another
worker, or this one is resigning) is not stepped: a step that finds it so does nothing, and
a batch under way is abandoned before its next event (its commit would be fenced out).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    HandlerFailed,
    StoreUnavailable,
)
from tillflow.engine.ids import format_id
from tillflow.engine.parked_lane import Holding, LaneParking
from tillflow.engine.processor import Processor, Session
from tillflow.engine.store import BatchEffects, EventStore
from tillflow.engine.types import Receipt, RecordedEvent
from tillflow.engine.versions import Rebuildable, base_of, live_name, version_of

THROUGHPUT_WINDOW = 5.0  # seconds
FIRST_BATCH = 32
"""Positions in the first batch of a lane taken over (:meth:`LaneProcessor.taken_over`)."""
REDOS_IN_TURN = 2
"""Times a step redoes a batch that lost to a concurrent commit, smaller, before raising
the conflict (:meth:`LaneProcessor.step`)."""
BATCH_SECONDS = 0.25
"""How long a batch may take before the lane's next ones are made smaller
(:meth:`LaneProcessor.step`)."""
KNOWN_ROWS = 100_000
"""Rows a processor remembers at most (:attr:`LaneProcessor.known_rows`); past that it
forgets them all and reads them again as it meets them."""
GIVE_WAY = 1.0
"""Seconds at most that a processor's other lanes give way to a lane just taken over
(:class:`Turns`)."""


class State(enum.Enum):
    """What a processor is doing right now."""

    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # on a barrier: an upstream processor has not passed the next event
    IDLE = "idle"  # caught up with the head
    RETRYING = "retrying"  # a handler failed; the policy asked for another attempt
    DEGRADED = "degraded"  # the store is unavailable: retrying with backoff
    FAILED = "failed"
    STOPPED = "stopped"
    ELSEWHERE = "elsewhere"  # declared here, run by another runtime (process, machine)
    STALLED = "stalled"  # behind and not moving for a while: judged by statistics (stalls.py)


@dataclass(frozen=True)
class StepResult:
    """What one step did. ``scanned`` positions passed, ``handled`` handler calls."""

    checkpoint: int
    limit: int
    waiting_on: str | None
    scanned: int
    handled: int

    @property
    def progressed(self) -> bool:
        return self.scanned > 0


CommitBatch = Callable[[str, int, int, int, BatchEffects], Receipt]
"""``EventStore.commit_batch``'s shape: processor, lane, expected, new checkpoint, effects."""


class Turns:
    """The lanes of one processor in one runtime, which take turns in one thread: while a
    lane just taken over has not had a step that did something (committed, or found
    nothing to do), the others give way, so that it is served next rather than after a
    batch of each of them; for :data:`GIVE_WAY` seconds at most. Given by a lease keeper."""

    def __init__(self) -> None:
        self._fresh: set[LaneProcessor] = set()
        self._until = 0.0

    def taken(self, lane: LaneProcessor) -> None:
        self._fresh.add(lane)
        self._until = time.monotonic() + GIVE_WAY

    def served(self, lane: LaneProcessor) -> None:
        self._fresh.discard(lane)

    def give_way(self, lane: LaneProcessor) -> bool:
        """Whether ``lane`` should let a lane just taken over go first."""
        if lane in self._fresh or time.monotonic() >= self._until:
            return False
        return any(fresh.leased for fresh in list(self._fresh))


def turn_takers(store: EventStore, processor: Processor) -> list[LaneProcessor]:
    """A lane processor for each lane of ``store``, sharing their memory (handler memory
    and rows known): for lanes stepped in turn by one thread, as a runtime's and a
    rebuild's are."""
    first = LaneProcessor(store, processor, 0)
    rest = [LaneProcessor(store, processor, n, memory_of=first) for n in range(1, store.lane_count)]
    return [first, *rest]


class LaneProcessor:
    """One processor on one lane. Not thread-safe: one caller steps it at a time.

    ``scheduled``: stepped by a simulator's schedule, which must replay exactly: no redo
    within a step (each redo a step of its own, so that the schedule can put anything
    before it), and batch sizes that do not depend on how long batches took."""

    def __init__(
        self,
        store: EventStore,
        processor: Processor,
        lane: int,
        *,
        scheduled: bool = False,
        memory_of: LaneProcessor | None = None,
    ) -> None:
        self.store = store
        self.processor = processor
        self.lane = lane
        self.state = State.STARTING
        self.waiting_on: str | None = None
        self.error: BaseException | None = None
        self.failed_event: RecordedEvent | None = None
        self.attempts = 0
        self.failures = 0
        """Batches that failed (a handler raising, the store failing), ever."""
        self.cache: dict[object, object] = {} if memory_of is None else memory_of.cache
        """Handler memory that outlives a batch; emptied whenever a batch fails to commit.
        Shared with ``memory_of`` (another lane of the processor stepped by the same thread,
        as a runtime's are): what one lane's batch committed, the next batch of another sees."""
        self.known_rows: dict[tuple[str, str], bytes | None] | None = None
        """View rows as this processor last committed or read them, so that a batch reads
        only those it has not met (shared and emptied as :attr:`cache` is). Only on a store
        that commits a batch only if every row it read is unchanged
        (:attr:`~tillflow.engine.store.EventStore.checks_rows_read`): a row another worker
        changed meanwhile fails the batch, and its redo reads afresh."""
        if store.checks_rows_read:
            self.known_rows = {} if memory_of is None else memory_of.known_rows
        self.scanned_total = 0
        self.handled_total = 0
        self.batches = 0
        self.last_batch = 0
        self._checkpoint: int | None = None
        self.head_seen = 0
        """The lane's head as last read (what statistics show while the store is away)."""
        self._history: deque[tuple[float, int]] = deque()
        self.batch_limit = processor.batch_size
        """Positions a batch may span: the processor's batch size, cut down while batches
        keep losing to concurrent commits (:meth:`contended`) or take longer than
        :data:`BATCH_SECONDS`, grown back as they land quickly."""
        self.leased = True
        """Whether this runtime may step this lane (always, unless a lease keeper shares
        the lanes among workers)."""
        self.follows_live = (
            isinstance(processor.handler, Rebuildable) and version_of(processor.name) == 1
        )
        """A rebuildable projection as declared: each step carries on whichever version of
        it is live, under that version's name (:mod:`tillflow.engine.versions`)."""
        self.redos_in_turn = 0 if scheduled else REDOS_IN_TURN
        """Redos of a batch that lost to a concurrent commit within one step."""
        self.paced = not scheduled
        """Whether batches are sized by how long they take (:data:`BATCH_SECONDS`)."""
        self.turns: Turns | None = None
        """Shared with this processor's other lanes when a lease keeper moves lanes."""
        self.commit_batch: CommitBatch | None = None
        """How batches commit: a lease keeper's fenced commit, or (``None``) the store's,
        looked up at each commit."""
        self.parking: LaneParking | None = None
        """Parked keys, when this processor parks or runs behind one that does (set by
        the runtime; ``None``: nothing is ever parked or held here)."""
        self.prepared = processor.prepare is None
        """Whether the processor's ``prepare`` has run for this lane here since the lane
        came to this worker."""

    def contended(self) -> None:
        """A batch lost to a concurrent commit (a view row another worker changed): make
        the next ones smaller, so that a lane with a backlog is not starved by lanes
        committing small batches to the same rows."""
        self.batch_limit = max(1, self.batch_limit // 4)

    def forget(self) -> None:
        """Drop the cached checkpoint and handler memory (the lane changed hands)."""
        self._checkpoint = None
        self.drop_memory()
        if self.parking is not None:
            self.parking.row = None

    def taken_over(self) -> None:
        """The lane came to this worker from another (or back): :meth:`forget`, and start
        with batches of at most :data:`FIRST_BATCH` positions, doubled as they commit, so
        that the first commit comes quickly however long the backlog the lane brings."""
        self.forget()
        self.prepared = self.processor.prepare is None  # another worker ran it meanwhile
        self.batch_limit = min(self.processor.batch_size, FIRST_BATCH)
        if self.turns is not None:
            self.turns.taken(self)

    @property
    def name(self) -> str:
        return self.processor.name

    @property
    def known_checkpoint(self) -> int | None:
        """The checkpoint as last read or committed, without asking the store (``None``
        once forgotten)."""
        return self._checkpoint

    def checkpoint(self) -> int:
        """The checkpoint as of this processor's last commit (read once from the store)."""
        if self._checkpoint is None:
            self._checkpoint = self.store.checkpoint(self.name, self.lane)
        return self._checkpoint

    def barrier(self) -> tuple[int, str | None]:
        """The last position this processor may read, and the upstream processor that
        limits it (``None`` when the head is the limit)."""
        limit = self.store.head(self.lane)
        self.head_seen = limit
        waiting_on: str | None = None
        for upstream in self.processor.after:
            position = self.store.checkpoint(upstream, self.lane)
            if position < limit:
                limit, waiting_on = position, upstream
        return limit, waiting_on

    def _follow_live(self) -> None:
        """Carry on the live version of this projection: after a rebuild's switch, this
        step and the next commit under the new version's name, from its checkpoint (a
        batch of the old version under way commits to the old version's rows only)."""
        name = live_name(self.store, base_of(self.processor.name))
        if name != self.processor.name:
            self.processor = dataclasses.replace(self.processor, name=name)
            parking = self.parking
            if parking is not None:  # that version's held keys, kept under its name
                self.parking = LaneParking(name, self.lane, parking.own, parking.upstream)
            self.forget()

    def step(self) -> StepResult:
        """Process at most one batch; see the module docstring. A batch that loses to a
        concurrent commit (a view row or stream another worker wrote meanwhile) is redone
        at once, a quarter the size, up to :attr:`redos_in_turn` times: in this step's
        turn, not after every other lane that shares its thread. A step that gives way to
        a lane just taken over (:class:`Turns`) does nothing. Batches are sized to take
        about :data:`BATCH_SECONDS` at most.

        Raises :class:`HandlerFailed` (effects before the failing event committed) or
        :class:`CheckpointConflict` (another worker moved the checkpoint; nothing written,
        the cached checkpoint is dropped and the next step re-reads it) or
        :class:`ConcurrencyConflict` (still losing after the redos; nothing written) or
        :class:`StoreUnavailable` (nothing of the batch committed, or the commit's fate is
        unknown: the cached checkpoint is dropped; no attempt is counted).
        """
        if self.follows_live:
            self._follow_live()
        turns = self.turns
        if turns is not None and turns.give_way(self):
            known = self._checkpoint or 0
            return StepResult(known, known, None, 0, 0)
        try:
            result = self._redoing()
        except BaseException:
            if turns is not None:
                turns.served(self)
            raise
        if turns is not None and (result.progressed or result.waiting_on is None):
            turns.served(self)
        return result

    def _redoing(self) -> StepResult:
        redos = 0
        while True:
            try:
                return self._attempt()
            except ConcurrencyConflict:
                if redos >= self.redos_in_turn:
                    raise
                redos += 1
                self.contended()

    def _attempt(self) -> StepResult:
        if not self.leased:  # let go while this step waited for its turn
            return self._elsewhere()
        began = time.monotonic()
        if not self.prepared:
            self._prepare()
        checkpoint = self.checkpoint()
        limit, waiting_on = self.barrier()
        holding: Holding | None = None
        if self.parking is not None:  # after the barrier: an upstream's park below it is seen
            holding = self.parking.step(self)
        if limit <= checkpoint:
            self.state = State.WAITING if waiting_on else State.IDLE
            self.waiting_on = waiting_on
            return StepResult(checkpoint, limit, waiting_on, 0, 0)
        self.state = State.RUNNING
        self.waiting_on = None
        upto = min(limit, checkpoint + self.batch_limit)
        events = self.store.read(self.lane, checkpoint, upto, self.processor.types)
        session = Session(
            self.store, self.name, cache=self.cache, batch=events, known_rows=self.known_rows
        )
        handler = self.processor.handler
        for index, event in enumerate(events):
            if not self.leased:  # let go meanwhile: its commit would be fenced out
                self.forget()  # the cache holds what the abandoned pass did
                return self._elsewhere()
            if holding is not None and holding.hold(event):
                continue
            session.begin(event)
            try:
                handler(event, session)
            except StoreUnavailable:
                self.drop_memory()  # it holds what the abandoned pass did
                raise
            except Exception as error:
                self._fail(checkpoint, events[:index], event, error)
        if holding is not None:
            holding.put(session)
        self._commit(checkpoint, upto, session, handled=len(events))
        if holding is not None:
            holding.adopt()
        self.attempts = 0
        self._pace(upto - checkpoint, time.monotonic() - began)
        return StepResult(upto, limit, waiting_on, upto - checkpoint, len(events))

    def _prepare(self) -> None:
        """Run the processor's ``prepare`` for this lane; a failure of it fails the step
        (a store error as a commit's does: the next step tries again)."""
        prepare = self.processor.prepare
        if prepare is not None:
            prepare(self.store, self.lane)
        self.prepared = True

    def _pace(self, scanned: int, seconds: float) -> None:
        """After a batch committed: the next one half as long if this one took more than
        :data:`BATCH_SECONDS` (never below :data:`FIRST_BATCH`), twice as long (up to the
        processor's batch size) if it took less than half of that or was that small. So a
        lane with a backlog holds its thread (which the processor's other lanes share) for
        a bounded time per turn."""
        if not self.paced or scanned <= FIRST_BATCH or seconds < BATCH_SECONDS / 2:
            self.batch_limit = min(self.processor.batch_size, self.batch_limit * 2)
        elif seconds > BATCH_SECONDS:
            self.batch_limit = max(FIRST_BATCH, scanned // 2)

    def _elsewhere(self) -> StepResult:
        """A step of a lane this runtime no longer holds: nothing read or written."""
        self.state = State.ELSEWHERE
        self.waiting_on = None
        known = self._checkpoint or 0
        return StepResult(known, known, None, 0, 0)

    def _fail(
        self,
        checkpoint: int,
        done: list[RecordedEvent],
        event: RecordedEvent,
        error: Exception,
    ) -> None:
        self.drop_memory()  # it holds what the abandoned pass did
        if event.position - 1 > checkpoint:
            holding = None if self.parking is None else self.parking.holding(self)
            session = Session(
                self.store, self.name, cache=self.cache, batch=done, known_rows=self.known_rows
            )
            for earlier in done:
                if holding is not None and holding.hold(earlier):
                    continue
                session.begin(earlier)
                self.processor.handler(earlier, session)
            if holding is not None:
                holding.put(session)
            self._commit(checkpoint, event.position - 1, session, handled=len(done))
            if holding is not None:
                holding.adopt()
        self.attempts += 1
        self.failures += 1
        self.error = error
        self.failed_event = event
        failure = HandlerFailed(
            self.name, self.lane, event.position, format_id(event.id), event.type
        )
        raise failure from error

    def park(self) -> None:
        """Park the event that failed (:attr:`failed_event`, just past the checkpoint): its
        key's head from now on, committed with the checkpoint moved onto it. Raises as a
        commit does (the next step then fails the event again and it is parked again)."""
        event, error, parking = self.failed_event, self.error, self.parking
        if event is None or error is None or parking is None or parking.own is None:
            raise RuntimeError(f"processor {self.name!r} has no failure to park")
        if event.position == self.checkpoint() + 1:
            parking.park(self, event, error)
        self.attempts = 0
        self.clear_failure()

    def commit_effects(self, upto: int | None, effects: BatchEffects, handled: int) -> None:
        """Commit ``effects`` with the checkpoint moved to ``upto`` (``None``: unmoved)."""
        checkpoint = self.checkpoint()
        self._commit(checkpoint, checkpoint if upto is None else upto, effects, handled)

    def _commit(
        self, checkpoint: int, upto: int, effects: Session | BatchEffects, handled: int
    ) -> None:
        try:
            commit = self.commit_batch or self.store.commit_batch
            sealed = effects.seal() if isinstance(effects, Session) else effects
            commit(self.name, self.lane, checkpoint, upto, sealed)
        except (CheckpointConflict, StoreUnavailable):
            self.forget()  # committed or not, the store tells on the next step
            raise
        except BaseException:
            self.drop_memory()
            raise
        if self.known_rows is not None:
            self._remember_rows(sealed)
        self._checkpoint = upto
        self.scanned_total += upto - checkpoint
        self.handled_total += handled
        self.batches += 1
        self.last_batch = upto - checkpoint
        now = time.monotonic()
        self._history.append((now, self.scanned_total))
        while self._history and self._history[0][0] < now - THROUGHPUT_WINDOW:
            self._history.popleft()

    def drop_memory(self) -> None:
        """Empty the handler memory and the rows known (a batch failed, the lane moved)."""
        self.cache.clear()
        if self.known_rows is not None:
            self.known_rows.clear()

    def _remember_rows(self, effects: BatchEffects) -> None:
        """After a commit: each row the batch read, as it now is."""
        known = self.known_rows
        assert known is not None
        if len(known) > KNOWN_ROWS:
            known.clear()
        views = effects.views
        for address, seen in effects.read.items():
            known[address] = views.get(address, seen)

    def clear_failure(self) -> None:
        """Forget the last failure (before a retry)."""
        self.error = None
        self.failed_event = None

    def throughput(self) -> float:
        """Positions scanned per second over the last few seconds."""
        now = time.monotonic()
        while self._history and self._history[0][0] < now - THROUGHPUT_WINDOW:
            self._history.popleft()
        if len(self._history) < 2:
            return 0.0
        (first_time, first_count), (last_time, last_count) = self._history[0], self._history[-1]
        span = max(now - first_time, last_time - first_time, 1e-3)
        return (last_count - first_count) / span
