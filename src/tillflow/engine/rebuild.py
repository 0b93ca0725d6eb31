"""Blue/green rebuilds: a new version of a projection built from the start of the log beside
the live one, then switched to in one transaction (or, dry run, compared and dropped).

::

    claim v(n+1) ──► step reporting@v(n+1) on every lane, behind the same after=[...]
                     (progress: positions passed / its barrier, rate, ETA; heartbeat)
                 ──► caught up: its barrier reached and every lane ≥ the live version's
                 ──► switch: live pointer = n+1 and the claim ended, one transaction,
                     only while the live version is still at most where n+1 stands
    dry run:     behind the live version as well; when both stand at the same positions,
                 their rows are compared by (view, key) in one snapshot; then dropped

The new version runs through :class:`LaneProcessor` like any processor (the same batches,
bulk reads and joins), in the calling thread. Runtimes that run the projection follow the
live pointer at their next step (:meth:`LaneProcessor.step`), so after the switch they carry
the new version on; the old version's rows stay until :func:`drop_retired`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from tillflow.engine.errors import (
    CheckpointConflict,
    CheckpointPassed,
    ConcurrencyConflict,
    HandlerFailed,
    StoreUnavailable,
)
from tillflow.engine.lane_processor import LaneProcessor, turn_takers
from tillflow.engine.outage import OutageBackoff
from tillflow.engine.parked_lane import attach_parking
from tillflow.engine.parking import parked_view
from tillflow.engine.processor import Processor
from tillflow.engine.store import EventStore
from tillflow.engine.versions import (
    ClaimHandle,
    LiveVersion,
    Rebuildable,
    UnknownProjection,
    live_version,
    read_claim,
    take_claim,
    versioned,
)

HEARTBEAT: Final = 2.0
"""Seconds between a rebuild's heartbeats (well inside the claim's staleness)."""
IDLE_POLL: Final = 0.005
DELETES_PER_COMMIT: Final = 2000
OUTAGE: Final = OutageBackoff()
"""How a rebuild waits while the store is away (as runtimes do)."""
QUIET_FOR: Final = 1.0
"""How long a retired version's checkpoints must stand still before its rows are dropped."""


@dataclass(frozen=True)
class Progress:
    """Where a rebuild stands: positions passed of those it must pass now, the rate."""

    version: int
    done: int
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        """Positions passed per second since the start."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (``None`` before there is a rate)."""
        return None if self.rate <= 0 else max(0, self.total - self.done) / self.rate


@dataclass(frozen=True)
class Difference:
    """A row on which the rebuilt version and the live one disagree (``None``: absent)."""

    view: str
    """The view's name in version 1 (what the projection calls it)."""
    key: str
    live: bytes | None
    rebuilt: bytes | None


@dataclass(frozen=True)
class RebuildOutcome:
    """What a rebuild did. ``positions``: where the new version stood at the switch (or
    the comparison); ``differences``: with a dry run, the rows that differ."""

    projection: str
    version: int
    previous: int
    positions: dict[int, int]
    scanned: int
    seconds: float
    switched: bool
    differences: list[Difference] | None = None
    live_positions: dict[int, int] = dataclasses.field(default_factory=dict)
    """Where the live version stood then, read in the same snapshot."""

    @property
    def rate(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


ProgressListener = Callable[[Progress], None]


def projections(processors: Sequence[Processor]) -> dict[str, Processor]:
    """The processors of ``processors`` that can be rebuilt, by name."""
    return {each.name: each for each in processors if isinstance(each.handler, Rebuildable)}


def rebuildable(processor: Processor) -> Rebuildable:
    """``processor``'s handler as :class:`Rebuildable`; :class:`UnknownProjection` if it
    cannot be rebuilt."""
    handler = processor.handler
    if not isinstance(handler, Rebuildable):
        raise UnknownProjection(processor.name, [])
    return handler


class Rebuild:
    """One rebuild of ``processor`` (the live declaration) over ``store``; :meth:`run` it."""

    def __init__(
        self,
        store: EventStore,
        processor: Processor,
        owner: str,
        *,
        graph: Sequence[Processor] = (),
        dry_run: bool = False,
        on_progress: ProgressListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``graph``: the processors declared with it, so that the new version holds the
        keys parked upstream (behind its ``after=``) as the live one does."""
        self.store = store
        self.processor = processor
        self.handler = rebuildable(processor)
        self.owner = owner
        self.graph = graph
        self.dry_run = dry_run
        self.on_progress = on_progress
        self.clock = clock

    def run(self) -> RebuildOutcome:
        """Build, then switch (or compare, with ``dry_run``). Raises :class:`RebuildRunning`
        with nothing written if another rebuild of the projection runs,
        :class:`RebuildTakenOver` if this one's claim lapsed, or the new version's handler
        failure (:class:`HandlerFailed`); the claim is let go whenever it stops."""
        name = self.processor.name
        claim = take_claim(self.store, name, self.owner, self.clock(), self.dry_run)
        began = time.monotonic()
        try:
            previous = live_version(self.store, name)
            after = self.processor.after
            if self.dry_run:  # never past the live version: both meet at the same positions
                after = (*after, versioned(name, previous))
            building = dataclasses.replace(
                self.processor, name=versioned(name, claim.claim.version), after=after
            )
            lanes = turn_takers(self.store, building)  # stepped in turn by this thread
            self._attach_parking(building, lanes, previous)
            return self._build(claim, lanes, previous, began)
        except BaseException:
            _let_go(claim, self.clock())
            raise

    def _attach_parking(
        self, building: Processor, lanes: list[LaneProcessor], previous: int
    ) -> None:
        """Park (and hold) in the new version as the runtime does in the live one."""
        declared = {each.name: each for each in self.graph}
        declared[versioned(self.processor.name, previous)] = self.processor
        known = tuple(name for name in building.after if name in declared)
        declared[building.name] = dataclasses.replace(building, after=known)
        attach_parking({building.name: lanes}, declared)

    def _build(
        self, claim: ClaimHandle, lanes: list[LaneProcessor], previous: int, began: float
    ) -> RebuildOutcome:
        beat = time.monotonic()
        scanned = away = 0
        while True:
            idle, limits, unavailable = True, 0, False
            for lane in lanes:
                try:
                    result = lane.step()
                except (CheckpointConflict, ConcurrencyConflict):
                    idle = False  # redone at the next turn, from the durable checkpoint
                    continue
                except HandlerFailed as failure:
                    self._retry_or_park(lane, failure)  # as the runtime does, or raise
                    idle = False
                    continue
                except StoreUnavailable:  # nothing of the batch committed: wait it out
                    idle, unavailable = False, True
                    continue
                scanned += result.scanned
                limits += result.limit
                idle = idle and not result.progressed
            if unavailable:
                time.sleep(OUTAGE.delay(away))
                away += 1
                continue
            away = 0
            now = time.monotonic()
            if self.on_progress is not None:
                done = sum(lane.checkpoint() for lane in lanes)
                total = max(limits, done)
                self.on_progress(Progress(claim.claim.version, done, total, now - began))
            if now - beat >= HEARTBEAT:
                claim.heartbeat(self.clock())
                beat = now
            if idle:
                outcome = self._finish(claim, lanes, previous, scanned, now - began)
                if outcome is not None:
                    return outcome
                time.sleep(IDLE_POLL)

    @staticmethod
    def _retry_or_park(lane: LaneProcessor, failure: HandlerFailed) -> None:
        """After a handler failure: with parking, wait before the next attempt or park the
        event (its key's later events then wait behind it, in the new version as in the
        live one); without, raise it again: the rebuild stops and switches nothing."""
        parking = lane.processor.parking
        if parking is None:
            raise failure
        wait = parking.retry_after(lane.attempts)
        if wait is None:
            with contextlib.suppress(Exception):  # the next step fails it again
                lane.park()
            return
        time.sleep(wait)
        lane.clear_failure()

    def _finish(
        self,
        claim: ClaimHandle,
        lanes: list[LaneProcessor],
        previous: int,
        scanned: int,
        seconds: float,
    ) -> RebuildOutcome | None:
        """Switch or compare if the new version has caught up; ``None`` if not yet."""
        store, name, version = self.store, self.processor.name, claim.claim.version
        live_name, new_name = versioned(name, previous), versioned(name, version)
        with store.snapshot():
            live = {lane: store.checkpoint(live_name, lane) for lane in range(store.lane_count)}
            built = {lane: store.checkpoint(new_name, lane) for lane in range(store.lane_count)}
            if self.dry_run:
                if built != live:
                    return None
                differences = self._compare(previous, version)
            elif any(built[lane] < live[lane] for lane in built):
                return None
        outcome = RebuildOutcome(
            name, version, previous, built, scanned, seconds, False, live_positions=live
        )
        if self.dry_run:
            drop_version(claim, self.handler, version)
            claim.release("dropped", self.clock())
            return dataclasses.replace(outcome, differences=differences)
        try:
            claim.switch(LiveVersion(version, previous, self.clock(), built), self.clock())
        except CheckpointPassed:
            return None  # the live version moved on after the compare: catch up, again
        return dataclasses.replace(outcome, switched=True)

    def _compare(self, live: int, rebuilt: int) -> list[Difference]:
        """The rows of the two versions that differ, by view and key (call in a snapshot)."""
        differences = []
        same = self.handler.comparable
        for view in self.handler.version_views(1):
            old = dict(self.store.view_rows(versioned(view, live)))
            new = dict(self.store.view_rows(versioned(view, rebuilt)))
            for key in sorted(old.keys() | new.keys()):
                before, after = old.get(key), new.get(key)
                if before == after:
                    continue
                if before is None or after is None or same(view, before) != same(view, after):
                    differences.append(Difference(view, key, before, after))
        return differences


def drop_version(claim: ClaimHandle, handler: Rebuildable, version: int) -> int:
    """Delete every row of ``version``'s views through ``claim``, and the keys it held
    parked; the rows deleted."""
    deleted = 0
    held = parked_view(versioned(claim.projection, version))
    for view in [*handler.version_views(version), held]:
        keys = [key for key, _ in claim.store.view_rows(view)]
        for start in range(0, len(keys), DELETES_PER_COMMIT):
            chunk = keys[start : start + DELETES_PER_COMMIT]
            claim.write({(view, key): None for key in chunk}, claim.claim)
            deleted += len(chunk)
    return deleted


def drop_retired(
    store: EventStore,
    processor: Processor,
    owner: str,
    clock: Callable[[], float] = time.time,
) -> dict[int, int]:
    """Delete the rows of every version of ``processor`` but the live one (the version
    switched away from, and those of dry runs or abandoned rebuilds); per version, the rows
    deleted. First waits until no runtime moves a retired version any more (its
    checkpoints still for :data:`QUIET_FOR` s: runtimes leave it at their next step after
    the switch). Raises :class:`RebuildRunning` while a rebuild of it runs."""
    handler = rebuildable(processor)
    name = processor.name
    live = live_version(store, name)
    last = read_claim(store, name)
    newest = max(live, 0 if last is None else last.version)
    claim = take_claim(store, name, owner, clock(), version=newest)
    try:
        retired = [version for version in range(1, newest + 1) if version != live]
        _wait_quiet(store, [versioned(name, version) for version in retired])
        dropped = {version: drop_version(claim, handler, version) for version in retired}
    except BaseException:
        _let_go(claim, clock())
        raise
    claim.release("dropped", clock())
    return {version: rows for version, rows in dropped.items() if rows}


def _wait_quiet(store: EventStore, names: list[str]) -> None:
    """Return once the checkpoints of ``names`` stood still for :data:`QUIET_FOR` s."""
    lanes = range(store.lane_count)
    seen = [[store.checkpoint(name, lane) for lane in lanes] for name in names]
    still_since = time.monotonic()
    while time.monotonic() - still_since < QUIET_FOR:
        time.sleep(QUIET_FOR / 10)
        now = [[store.checkpoint(name, lane) for lane in lanes] for name in names]
        if now != seen:
            seen, still_since = now, time.monotonic()


def _let_go(claim: ClaimHandle, now: float) -> None:
    """End a claim that stops early (best effort: a lapsed one is already someone else's,
    and a store gone lets it go stale)."""
    try:
        claim.release("stopped", now)
    except Exception:
        return
