"""Workers sharing the lanes of processor groups through leases (the worker side).

A :class:`LeaseKeeper` keeps this worker's fair share of the lanes of each processor group
it runs: every ``ttl / 3`` it marks itself alive (with the groups it runs), renews what it
holds, lets go of what it lost, and then, group by group, hands over its surplus when more
workers run that group than before and takes free or expired lanes up to
``ceil(lanes / live workers running the group)``. Leases are taken and let go per
(group, lane). Taking lanes of a group, it prefers those it already holds in its other
groups, so workers that run the same groups hold the same lanes of each (co-partitioned);
it never leaves a lane untaken for that. A group whose processor is not ``spread`` (its
lanes write the same streams or rows) is run whole: the worker holding its lane 0 takes all
its lanes, and those groups are spread out over the workers by their processors' declared
``weight`` (summed per worker). An ``after=`` group's
barrier on a lane reads the
store's durable checkpoints, so it holds wherever its upstream runs. Every batch of a held
lane commits under its fence (owner, epoch); a batch under a lease since lost is rolled
back by the store. The lease table itself (SQL, database clock) is the store's, e.g.
:class:`tillflow.engine.postgres.leases.Leases`.

Failover is quick by three rules: a worker gone without resigning has its lanes taken just
after its leases expire, not at the others' next round (:class:`LeaseExpiries`); a lane
taken starts with small batches however long its backlog
(:meth:`~tillflow.engine.lane_processor.LaneProcessor.taken_over`); a lane let go is no
longer stepped, and a batch under way on it stops at its next event, so that resigning
(SIGTERM) hands the lanes over before the batches in hand would have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tillflow.engine.lane_processor import CommitBatch, LaneProcessor
from tillflow.engine.outage import OutageBackoff, StoreHealth, describe_error

log = logging.getLogger("tillflow.leasing")

ANCHOR = 0
"""The lane whose lease decides which worker runs a group that is run whole."""
EXPIRY_MARGIN = 0.01
"""Seconds past another worker's lease expiry (database clock) before the round that takes
it: the statement's way to the server."""


@dataclass(frozen=True, slots=True)
class Fence:
    """What a worker commits a batch under: its id and the epoch of its lease."""

    owner: str
    epoch: int


def weights_of(lanes: Mapping[str, Sequence[LaneProcessor]]) -> dict[str, int]:
    """Each group's processor's ``weight`` (groups with no lanes left out)."""
    return {
        group: processors[0].processor.weight for group, processors in lanes.items() if processors
    }


def fair_share(lanes: int, live_workers: int) -> int:
    """How many lanes of a group each live worker aims at: ``ceil(lanes / live)``."""
    if lanes < 0 or live_workers < 0:
        raise ValueError(f"lanes and workers cannot be negative: {lanes}, {live_workers}")
    return lanes if live_workers == 0 else math.ceil(lanes / live_workers)


class LeaseTable(Protocol):
    """The store side: leases per (group, lane) and heartbeats, on the database clock."""

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None: ...
    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]: ...
    def release(self, processor: str, lane: int, fence: Fence) -> bool: ...
    def resign(self, owner: str) -> int: ...
    def heartbeat(self, owner: str, ttl: float, groups: Sequence[str] = ()) -> None: ...
    def live_workers(self, group: str | None = None) -> int: ...


@runtime_checkable
class LeaseExpiries(Protocol):
    """A lease table that can tell when the other workers' leases run out (optional)."""

    def next_expiry(self, owner: str) -> float | None:
        """Seconds until the soonest lease or heartbeat of a worker other than ``owner``
        expires (``None``: none is running out)."""


@runtime_checkable
class LeaseVacancies(Protocol):
    """A lease table that can tell, in one look, which lanes are held now (optional)."""

    def held_lanes(self) -> dict[str, set[int]]:
        """Per group, the lanes whose lease is held and unexpired now (by anyone)."""


@runtime_checkable
class LeaseRoster(Protocol):
    """A lease table that can tell who runs what and who anchors what (optional; without
    it, groups run whole are still each run by one worker, but not spread out evenly)."""

    def roster(self) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
        """The live workers with the groups each runs, and per group the owner of its
        lane-0 lease (held and unexpired)."""


@dataclass(frozen=True)
class Roster:
    """One look at the live workers (each with its groups) and at who holds each group's
    lane 0. Every worker counts the same way (the lanes 0 of any group, each weighing its
    processor's ``weight``, as it cannot tell which of another worker's groups are run
    whole), so workers running the same processors agree on who is least loaded."""

    workers: dict[str, frozenset[str]]
    anchors: dict[str, str]

    def least(self, group: str, owner: str, weights: Mapping[str, int]) -> int:
        """The least load (the summed ``weights`` of the lanes 0 it holds; 1 for a group
        not in ``weights``) of a live worker running ``group`` other than ``owner`` (a
        large number when there is none)."""
        load: Counter[str] = Counter()
        for anchored, holder in self.anchors.items():
            load[holder] += weights.get(anchored, 1)
        loads = [load[w] for w, groups in self.workers.items() if w != owner and group in groups]
        return min(loads, default=1 << 30)


@runtime_checkable
class LeaseHints(Protocol):
    """A lease table that can tell its workers when to look again (optional)."""

    def listen(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_change`` when a lease is let go or a worker joins, until ``stop``."""


class LeaseKeeper:
    """Keeps ``owner``'s share of the lanes of ``lanes`` (group -> its lane processors,
    one per lane, as a runtime holds them). ``fenced(fence)``: the batch commit to use
    under that fence. Until :meth:`tick` grants a (group, lane), it is not stepped.
    ``weights``: the ``weight`` of each processor the fleet may run, also those this
    worker does not (its own processors' weights are added): workers counting other
    workers' load with the same weights agree on who is least loaded, so give every worker
    the same (a group missing from it weighs 1)."""

    def __init__(
        self,
        table: LeaseTable,
        owner: str,
        lanes: Mapping[str, Sequence[LaneProcessor]],
        ttl: float,
        fenced: Callable[[Fence], CommitBatch],
        health: StoreHealth | None = None,
        outage: OutageBackoff | None = None,
        on_taken: Callable[[], None] | None = None,
        weights: Mapping[str, int] | None = None,
    ) -> None:
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"a lease TTL must be a positive number of seconds: {ttl!r}")
        self.table = table
        self.owner = owner
        self.ttl = ttl
        self.groups = sorted(lanes)
        self._lanes = lanes
        self._fenced = fenced
        self.lane_count = len(lanes[self.groups[0]]) if self.groups else 0
        self.fences: dict[tuple[str, int], Fence] = {}
        """The (group, lane) leases held, with their fences."""
        self.changes = 0
        """Leases of a (group, lane) taken or let go, ever."""
        self._valid_until = 0.0
        self.health = health or StoreHealth(owner)
        """Told when a round fails (the database away) and when one works again."""
        self.outage = outage or OutageBackoff(most=ttl / 3)
        """Pauses between failed rounds (at most ``ttl / 3``: a renewal is never late)."""
        self.on_taken = on_taken
        """Called (in :meth:`keep`'s event loop) after a round that took lanes: e.g. the
        runtime's :meth:`~tillflow.engine.runtime.Runtime.wake`, so that they are stepped
        at once rather than at their next poll."""
        self.next_look: float | None = None
        """Seconds from the end of the last round until another worker's lease or heartbeat
        expires (from a :class:`LeaseExpiries` table; ``None``: not known)."""
        self._start = zlib.crc32(owner.encode()) % max(self.lane_count, 1)
        self._whole = [
            group for group in self.groups if lanes[group] and not lanes[group][0].processor.spread
        ]
        """The groups run whole by one worker (sorted): see :meth:`_balance_whole`."""
        self._weights = {**(weights or {}), **weights_of(lanes)}
        """Each group's processor's ``weight``: how groups run whole are spread out."""
        self._handed_over = False
        """Whether this round has handed a group run whole over (one a round)."""
        for processors in lanes.values():
            for lane_processor in processors:
                lane_processor.leased = False

    @property
    def held(self) -> dict[int, dict[str, Fence]]:
        """The lanes held in at least one group, each with the fences of its groups held."""
        held: dict[int, dict[str, Fence]] = {}
        for (group, lane), fence in sorted(self.fences.items()):
            held.setdefault(lane, {})[group] = fence
        return dict(sorted(held.items()))

    def lanes_of(self, group: str) -> list[int]:
        """The lanes of ``group`` held, ascending."""
        return sorted(lane for held, lane in self.fences if held == group)

    def tick(self) -> None:
        """One round: heartbeat, renew, drop what was lost; then per group, hand over the
        surplus or take free lanes up to its fair share. Raises what the table raises
        (database away); past the TTL since the last renewal every lease is then dropped
        locally."""
        started = time.monotonic()
        try:
            self.table.heartbeat(self.owner, self.ttl, self.groups)
            renewed = self.table.renew(self.owner, self.ttl)
        except Exception:
            if time.monotonic() > self._valid_until:
                for key in sorted(self.fences):
                    self._drop(key, release=False)
            raise
        self._valid_until = started + self.ttl
        for key, fence in sorted(self.fences.items()):
            if renewed.get(key) != fence:
                self._drop(key, release=True)
        # one look at what is held spares an acquisition tried on each lane held by others
        vacancies = self.table.held_lanes() if isinstance(self.table, LeaseVacancies) else None
        roster = None
        if self._whole and isinstance(self.table, LeaseRoster):
            roster = Roster(*self.table.roster())
        self._handed_over = False
        for group in self.groups:
            taken = None if vacancies is None else vacancies.get(group, set())
            if group in self._whole:
                self._balance_whole(group, taken, roster)
                continue
            running = max(1, self.table.live_workers(group))
            self._balance(group, fair_share(self.lane_count, running), taken)
        if isinstance(self.table, LeaseExpiries):
            self.next_look = self.table.next_expiry(self.owner)

    def _balance(self, group: str, share: int, taken: set[int] | None = None) -> None:
        """Hand the surplus over, or take lanes up to ``share``, skipping ``taken`` (lanes
        seen held a moment ago: ``None``, try every lane)."""
        held = self.lanes_of(group)
        if len(held) > share:  # others are short: hand the surplus over, first the lanes
            # not held in this worker's other groups, then the highest
            surplus = sorted(held, key=lambda lane: (not self._co_held(group, lane), lane))
            for lane in surplus[share:][::-1]:
                self._drop((group, lane), release=True)
            return
        count = len(held)
        rotation = range(self._start, self._start + self.lane_count)
        order = sorted(rotation, key=lambda at: not self._co_held(group, at % self.lane_count))
        for at in order:
            if count >= share:
                break
            lane = at % self.lane_count
            if (group, lane) in self.fences or (taken is not None and lane in taken):
                continue
            if self._try(group, lane):
                count += 1

    def _balance_whole(self, group: str, taken: set[int] | None, roster: Roster | None) -> None:
        """A group run whole (its processor not ``spread``): whoever holds its lane 0 (the
        anchor) takes all its lanes; lanes held without the anchor (a race, a hand-over)
        are let go. A free anchor is tried by the workers running the group that carry the
        least load (the weights of the lanes 0 they hold, of any group: :class:`Roster`);
        one whose load exceeds another's running the group by more than the group's weight
        hands it over (one group a round: each hand-over narrows the gap), so the groups
        spread out evenly."""
        held = self.lanes_of(group)
        weights = self._weights
        if ANCHOR not in held:
            for lane in held[::-1]:
                self._drop((group, lane), release=True)
            if taken is not None and ANCHOR in taken:
                return
            if roster is not None and self._load() > roster.least(group, self.owner, weights):
                return
            if not self._try(group, ANCHOR):
                return
        elif (
            roster is not None
            and not self._handed_over
            and self._load() - roster.least(group, self.owner, weights) > weights[group]
        ):
            for lane in held[::-1]:
                self._drop((group, lane), release=True)
            self._handed_over = True
            return
        for lane in range(self.lane_count):
            if (group, lane) not in self.fences and (taken is None or lane not in taken):
                self._try(group, lane)

    def _load(self) -> int:
        """The weights of the groups whose lane 0 this worker holds (counted as
        :class:`Roster` counts the others: it cannot tell which of their groups are run
        whole)."""
        return sum(
            self._weights.get(group, 1) for group in self.groups if (group, ANCHOR) in self.fences
        )

    def _co_held(self, group: str, lane: int) -> bool:
        """Whether this worker holds ``lane`` in one of its other groups."""
        return any((other, lane) in self.fences for other in self.groups if other != group)

    def _try(self, group: str, lane: int) -> bool:
        fence = self.table.acquire(group, lane, self.owner, self.ttl)
        if fence is None:
            return False
        lane_processor = self._lanes[group][lane]
        lane_processor.taken_over()
        lane_processor.commit_batch = self._fenced(fence)
        lane_processor.leased = True
        self.fences[(group, lane)] = fence
        self.changes += 1
        log.info("%s took %s@%d (epoch %d)", self.owner, group, lane, fence.epoch)
        return True

    def _drop(self, key: tuple[str, int], release: bool) -> None:
        group, lane = key
        fence = self.fences.pop(key)
        self._lanes[group][lane].leased = False
        if release:
            self.table.release(group, lane, fence)
        self.changes += 1
        log.info("%s let %s@%d go", self.owner, group, lane)

    def resign(self) -> None:
        """Let every lane go at once (SIGTERM): others take them without waiting."""
        for group, lane in self.fences:
            self._lanes[group][lane].leased = False
        self.fences.clear()
        self.table.resign(self.owner)

    async def keep(self, stop: asyncio.Event) -> None:
        """Tick every ``ttl / 3`` until ``stop`` is set, at once on a hint from a table
        that gives them (:class:`LeaseHints`: a lease let go, a worker joining), and just
        after another worker's lease or heartbeat expires when sooner (from a
        :class:`LeaseExpiries` table: a worker gone without resigning). A
        failed round (the database away) is retried sooner, with backoff, and makes
        :attr:`health` degraded until a round works again; once it does, the lanes
        dropped meanwhile are taken again."""
        hint = asyncio.Event()
        unhinted = self._listen(hint)
        failed = 0
        try:
            while not stop.is_set():
                hint.clear()
                pause = self.ttl / 3
                try:
                    taken = self.changes
                    await asyncio.to_thread(self.tick)
                    if self.on_taken is not None and self.changes != taken:
                        self.on_taken()
                    if self.next_look is not None:  # a lease running out: take it then
                        pause = min(pause, self.next_look + EXPIRY_MARGIN)
                except Exception as error:
                    self.health.failed(self, error)
                    log.debug("%s: lease round failed: %s", self.owner, describe_error(error))
                    pause = min(pause, self.outage.delay(failed))
                    failed += 1
                else:
                    failed = 0
                    self.health.recovered(self)
                await _either(stop, hint, pause)
        finally:
            unhinted.set()

    def _listen(self, hint: asyncio.Event) -> threading.Event:
        """Start a thread setting ``hint`` on the table's hints, if it gives any; the
        event returned stops it."""
        stop = threading.Event()
        if isinstance(self.table, LeaseHints):
            loop = asyncio.get_running_loop()

            def nudge() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(hint.set)

            threading.Thread(
                target=self.table.listen,
                args=(nudge, stop),
                name=f"tillflow:lease-hints:{self.owner}",
                daemon=True,
            ).start()
        return stop


async def _either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    """Wait until either event is set, or ``timeout`` seconds."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
