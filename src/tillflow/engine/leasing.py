"""Workers sharing the lanes of processor groups through leases (the worker side).

A :class:`LeaseKeeper` keeps this worker's fair share of the lanes: every ``ttl / 3`` it
marks itself alive, renews what it holds, lets go of what it lost, hands over its surplus
when there are more live workers than before, and takes free or expired lanes up to
``ceil(lanes / live workers)``. The groups it runs are leased together on each lane
(co-partitioned), so an ``after=`` group's barrier on a lane, read from the store's
durable checkpoints, holds wherever its upstream runs. Every batch of a held lane commits
under its fence (owner, epoch); a batch under a lease since lost is rolled back by the
store. The lease table itself (SQL, database clock) is the store's, e.g.
:class:`tillflow.engine.postgres.leases.Leases`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tillflow.engine.lane_processor import CommitBatch, LaneProcessor
from tillflow.engine.outage import OutageBackoff, StoreHealth, describe_error

log = logging.getLogger("tillflow.leasing")


@dataclass(frozen=True, slots=True)
class Fence:
    """What a worker commits a batch under: its id and the epoch of its lease."""

    owner: str
    epoch: int


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
    def heartbeat(self, owner: str, ttl: float) -> None: ...
    def live_workers(self) -> int: ...


class LeaseKeeper:
    """Keeps ``owner``'s share of the lanes of ``lanes`` (group -> its lane processors,
    one per lane, as a runtime holds them). ``fenced(fence)``: the batch commit to use
    under that fence. Until :meth:`tick` grants a lane, none of it is stepped."""

    def __init__(
        self,
        table: LeaseTable,
        owner: str,
        lanes: Mapping[str, Sequence[LaneProcessor]],
        ttl: float,
        fenced: Callable[[Fence], CommitBatch],
        health: StoreHealth | None = None,
        outage: OutageBackoff | None = None,
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
        self.held: dict[int, dict[str, Fence]] = {}
        """Lanes held, with each group's fence."""
        self.changes = 0
        """Lanes taken or let go, ever."""
        self._valid_until = 0.0
        self.health = health or StoreHealth(owner)
        """Told when a round fails (the database away) and when one works again."""
        self.outage = outage or OutageBackoff(most=ttl / 3)
        """Pauses between failed rounds (at most ``ttl / 3``: a renewal is never late)."""
        self._start = zlib.crc32(owner.encode()) % max(self.lane_count, 1)
        for processors in lanes.values():
            for lane_processor in processors:
                lane_processor.leased = False

    def tick(self) -> None:
        """One round: heartbeat, renew, drop what was lost, hand over the surplus, take
        free lanes up to the fair share. Raises what the table raises (database away);
        past the TTL since the last renewal every lane is then dropped locally."""
        started = time.monotonic()
        try:
            self.table.heartbeat(self.owner, self.ttl)
            renewed = self.table.renew(self.owner, self.ttl)
        except Exception:
            if time.monotonic() > self._valid_until:
                for lane in list(self.held):
                    self._drop(lane, release=False)
            raise
        self._valid_until = started + self.ttl
        for lane, fences in list(self.held.items()):
            if any(renewed.get((group, lane)) != fence for group, fence in fences.items()):
                self._drop(lane, release=True)
        share = fair_share(self.lane_count, max(1, self.table.live_workers()))
        while len(self.held) > share:  # others are short: hand the highest lanes over
            self._drop(max(self.held), release=True)
        for step in range(self.lane_count):
            if len(self.held) >= share:
                break
            lane = (self._start + step) % self.lane_count
            if lane not in self.held:
                self._try(lane)

    def _try(self, lane: int) -> None:
        fences: dict[str, Fence] = {}
        for group in self.groups:
            fence = self.table.acquire(group, lane, self.owner, self.ttl)
            if fence is None:
                for taken, held in fences.items():
                    self.table.release(taken, lane, held)
                return
            fences[group] = fence
        for group, fence in fences.items():
            lane_processor = self._lanes[group][lane]
            lane_processor.forget()
            lane_processor.commit_batch = self._fenced(fence)
            lane_processor.leased = True
        self.held[lane] = fences
        self.changes += 1
        log.info("%s took lane %d (%s)", self.owner, lane, fences)

    def _drop(self, lane: int, release: bool) -> None:
        fences = self.held.pop(lane)
        for group, fence in fences.items():
            self._lanes[group][lane].leased = False
            if release:
                self.table.release(group, lane, fence)
        self.changes += 1
        log.info("%s let lane %d go", self.owner, lane)

    def resign(self) -> None:
        """Let every lane go at once (SIGTERM): others take them without waiting."""
        for lane in list(self.held):
            for group in self.groups:
                self._lanes[group][lane].leased = False
        self.held.clear()
        self.table.resign(self.owner)

    async def keep(self, stop: asyncio.Event) -> None:
        """Tick every ``ttl / 3`` until ``stop`` is set. A failed round (the database
        away) is retried sooner, with backoff, and makes :attr:`health` degraded until a
        round works again; once it does, the lanes dropped meanwhile are taken again."""
        failed = 0
        while not stop.is_set():
            pause = self.ttl / 3
            try:
                await asyncio.to_thread(self.tick)
            except Exception as error:
                self.health.failed(self, error)
                log.debug("%s: lease round failed: %s", self.owner, describe_error(error))
                pause = min(pause, self.outage.delay(failed))
                failed += 1
            else:
                failed = 0
                self.health.recovered(self)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()
