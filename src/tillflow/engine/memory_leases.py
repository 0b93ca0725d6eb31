"""Leases per (processor group, lane) and worker heartbeats in memory, on a clock it is given:
PostgreSQL's lease rules (``engine/postgres/leases.py``) for workers sharing a
:class:`MemoryEventStore` — the simulator's workers, or tests of a :class:`LeaseKeeper`.

::

    acquire ── free (no owner, resigned or expired)? ─► owner, epoch + 1, expiry now + ttl
    renew ──── every unexpired lease of the owner ────► expiry now + ttl
    fenced_commit(store, fence) ── under the store's lock: the fence holds (owner, epoch,
               unexpired), the checkpoint is the expected one, every view row the batch
               read is unchanged ─► the batch; else LeaseLost / CheckpointConflict /
               ViewRowChanged and nothing written
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tillflow.engine.errors import CheckpointConflict, LeaseLost, ViewRowChanged
from tillflow.engine.lane_processor import CommitBatch
from tillflow.engine.leasing import Fence
from tillflow.engine.memory import MemoryEventStore
from tillflow.engine.store import BatchEffects
from tillflow.engine.types import Receipt


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as the table holds it: ``owner`` (``None`` once released or resigned), the
    ``epoch`` of its last grant, its expiry on the table's clock."""

    owner: str | None
    epoch: int
    expires: float


def changed_row(store: MemoryEventStore, effects: BatchEffects) -> tuple[str, str] | None:
    """The first (view, key) that ``effects`` read and that is no longer what it read (a
    batch of another lane changed it since), ``None`` if none."""
    for (view, key), seen in sorted(effects.read.items()):
        if store.read_view(view, key) != seen:
            return view, key
    return None


def _seconds(ttl: float) -> float:
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"a lease TTL must be a positive number of seconds: {ttl!r}")
    return float(ttl)


class MemoryLeases:
    """A :class:`~tillflow.engine.leasing.LeaseTable` in memory. ``clock``: seconds, never
    going back (default :func:`time.monotonic`; the simulator passes its own). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._leases: dict[tuple[str, int], Lease] = {}
        self._workers: dict[str, tuple[float, frozenset[str]]] = {}
        """worker -> when its heartbeat expires, the groups it runs"""
        self.refused = 0
        """Batches refused by their fence, ever."""

    # -- the LeaseTable port ----------------------------------------------------------------

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        """Take the lease if it is free (never held, resigned or expired): the new fence
        (epoch one more than the last), else ``None``."""
        seconds = _seconds(ttl)
        with self._lock:
            now = self.clock()
            lease = self._leases.get((processor, lane))
            if lease is not None and lease.owner is not None and now < lease.expires:
                return None
            epoch = 1 if lease is None else lease.epoch + 1
            self._leases[(processor, lane)] = Lease(owner, epoch, now + seconds)
            return Fence(owner, epoch)

    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]:
        """Extend every unexpired lease of ``owner`` by ``ttl`` from now; the leases it
        still holds."""
        seconds = _seconds(ttl)
        renewed: dict[tuple[str, int], Fence] = {}
        with self._lock:
            now = self.clock()
            for (processor, lane), lease in sorted(self._leases.items()):
                if lease.owner == owner and now < lease.expires:
                    self._leases[(processor, lane)] = Lease(owner, lease.epoch, now + seconds)
                    renewed[(processor, lane)] = Fence(owner, lease.epoch)
        return renewed

    def release(self, processor: str, lane: int, fence: Fence) -> bool:
        """Hand the lease over at once; ``False`` if ``fence`` no longer names it (even
        expired, a lease still at this owner and epoch is released, as on PostgreSQL)."""
        with self._lock:
            lease = self._leases.get((processor, lane))
            if lease is None or (lease.owner, lease.epoch) != (fence.owner, fence.epoch):
                return False
            now = self.clock()
            self._leases[(processor, lane)] = Lease(None, lease.epoch, now)
            return True

    def resign(self, owner: str) -> int:
        """Release every lease of ``owner`` and drop its heartbeat; how many leases."""
        with self._lock:
            now = self.clock()
            mine = [key for key, lease in sorted(self._leases.items()) if lease.owner == owner]
            for processor, lane in mine:
                epoch = self._leases[(processor, lane)].epoch
                self._leases[(processor, lane)] = Lease(None, epoch, now)
            self._workers.pop(owner, None)
            return len(mine)

    def heartbeat(self, owner: str, ttl: float, groups: Sequence[str] = ()) -> None:
        """Mark ``owner`` alive for ``ttl`` seconds from now, running ``groups``."""
        seconds = _seconds(ttl)
        with self._lock:
            self._workers[owner] = (self.clock() + seconds, frozenset(groups))

    def live_workers(self, group: str | None = None) -> int:
        """Workers whose heartbeat has not expired; with ``group``, those running it."""
        with self._lock:
            now = self.clock()
            return sum(
                1
                for expires, groups in self._workers.values()
                if now < expires and (group is None or group in groups)
            )

    def roster(self) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
        """The live workers with their groups, and per group its lane-0 lease's owner."""
        with self._lock:
            now = self.clock()
            workers = {w: groups for w, (expires, groups) in self._workers.items() if now < expires}
            anchors = {
                group: lease.owner
                for (group, lane), lease in self._leases.items()
                if lane == 0 and lease.owner is not None and now < lease.expires
            }
            return workers, anchors

    # -- the fence --------------------------------------------------------------------------

    def holds(self, processor: str, lane: int, fence: Fence) -> bool:
        """The fence rule: ``fence`` is the lease of (``processor``, ``lane``) now — the same
        owner, the same epoch, not expired."""
        with self._lock:
            lease = self._leases.get((processor, lane))
            return (
                lease is not None
                and (lease.owner, lease.epoch) == (fence.owner, fence.epoch)
                and self.clock() < lease.expires
            )

    def fenced_commit(self, store: MemoryEventStore, fence: Fence) -> CommitBatch:
        """``store.commit_batch`` under ``fence``: what a :class:`LeaseKeeper` is given as
        ``fenced``. The checks and the commit happen under the store's lock, so nothing
        commits and no lease changes hands in between; see the module docstring for what is
        refused."""

        def commit(
            processor: str, lane: int, expected: int, new: int, effects: BatchEffects
        ) -> Receipt:
            # the store's lock (no commit in between), then the table's (no takeover)
            with store.snapshot(), self._lock:
                if not self.holds(processor, lane, fence):
                    self.refused += 1
                    raise LeaseLost(processor, lane, fence.owner, fence.epoch)
                actual = store.checkpoint(processor, lane)
                if actual != expected:
                    raise CheckpointConflict(processor, lane, expected, actual)
                changed = changed_row(store, effects)
                if changed is not None:
                    raise ViewRowChanged(processor, *changed)
                return store.commit_batch(processor, lane, expected, new, effects)

        return commit

    # -- reading ----------------------------------------------------------------------------

    def lease(self, processor: str, lane: int) -> Lease | None:
        """The lease of (``processor``, ``lane``), ``None`` if it was never taken."""
        with self._lock:
            return self._leases.get((processor, lane))
