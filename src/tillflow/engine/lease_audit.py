"""An oracle for leases, for the simulator: it stands between the workers and a lease table,
keeps its own model of who holds each lane from the table's answers alone (never asking the
table's fence), and says what is wrong.

::

    LeaseKeeper ──► LeaseAudit ──► the table (e.g. MemoryLeases)
                        │ model per (group, lane): owner, expiry, tenure number
                        ▼
    problems: a lease granted while another's still ran · a lease renewed after it ran out ·
    a release of a tenure that was over · a batch that landed outside the tenure its fence
    was granted in (checked by :meth:`LeaseAudit.landed` after each commit)

Tenures are counted here, one per grant; the epochs the table hands out are not trusted,
so a table that forgets to move an epoch on is caught too. Times are the ``clock``'s, which
must be the table's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tillflow.engine.leasing import Fence, LeaseTable


@dataclass(slots=True)
class Tenure:
    """One grant of a lease as the audit saw it: ``number`` counts the grants of the lease,
    ``owner`` is ``None`` once released or resigned."""

    owner: str | None
    expires: float
    number: int

    def runs(self, now: float) -> bool:
        return self.owner is not None and now < self.expires


class LeaseAudit:
    """A :class:`LeaseTable` that passes every call to ``table`` and checks its answers;
    :attr:`problems` collects what was wrong (take them with :meth:`take_problems`)."""

    def __init__(self, table: LeaseTable, clock: Callable[[], float]) -> None:
        self.table = table
        self.clock = clock
        self.tenures: dict[tuple[str, int], Tenure] = {}
        self.problems: list[str] = []
        self._granted: dict[int, tuple[Fence, tuple[str, int], int]] = {}
        """id of a fence the table handed out -> it, its lease and its tenure number (the
        fence is kept, so its id stays its own)."""

    # -- the LeaseTable port, checked -------------------------------------------------------

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        fence = self.table.acquire(processor, lane, owner, ttl)
        if fence is None:
            return None
        now, key = self.clock(), (processor, lane)
        tenure = self.tenures.get(key)
        if tenure is not None and tenure.runs(now):
            self.problems.append(
                f"{processor}@{lane} granted to {owner} while {tenure.owner}'s lease runs "
                f"until {tenure.expires:g} s (now {now:g} s)"
            )
        number = 1 if tenure is None else tenure.number + 1
        self.tenures[key] = Tenure(owner, now + ttl, number)
        self._granted[id(fence)] = (fence, key, number)
        return fence

    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]:
        renewed = self.table.renew(owner, ttl)
        now = self.clock()
        for processor, lane in sorted(renewed):
            tenure = self.tenures.get((processor, lane))
            if tenure is None or tenure.owner != owner or not tenure.runs(now):
                self.problems.append(
                    f"{processor}@{lane} renewed for {owner} at {now:g} s, but "
                    f"{self.describe(processor, lane)}"
                )
                continue
            tenure.expires = now + ttl
        return renewed

    def release(self, processor: str, lane: int, fence: Fence) -> bool:
        released = self.table.release(processor, lane, fence)
        tenure = self.tenures.get((processor, lane))
        if released and tenure is not None:
            if self.tenure_of(fence) != tenure.number:
                self.problems.append(
                    f"{processor}@{lane} released by {fence.owner} with a fence of another "
                    f"tenure: {self.describe(processor, lane)}"
                )
            tenure.owner = None
        return released

    def resign(self, owner: str) -> int:
        released = self.table.resign(owner)
        for tenure in self.tenures.values():
            if tenure.owner == owner:
                tenure.owner = None
        return released

    def heartbeat(self, owner: str, ttl: float, groups: Sequence[str] = ()) -> None:
        self.table.heartbeat(owner, ttl, groups)

    def live_workers(self, group: str | None = None) -> int:
        return self.table.live_workers(group)

    # -- what batches did -------------------------------------------------------------------

    def holds(self, processor: str, lane: int, fence: Fence) -> bool:
        """Whether ``fence`` is of the tenure that runs now on (``processor``, ``lane``)."""
        tenure = self.tenures.get((processor, lane))
        return (
            tenure is not None
            and tenure.runs(self.clock())
            and tenure.owner == fence.owner
            and self.tenure_of(fence) == tenure.number
        )

    def landed(self, processor: str, lane: int, fence: Fence, batch: str) -> None:
        """A batch committed under ``fence``: a problem unless it is the running tenure's."""
        if not self.holds(processor, lane, fence):
            number = self.tenure_of(fence)
            granted = "a fence never granted" if number is None else f"tenure {number}"
            self.problems.append(
                f"{batch} landed under {granted} (epoch {fence.epoch}) at {self.clock():g} s, "
                f"but {self.describe(processor, lane)}"
            )

    def take_problems(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    def tenure_of(self, fence: Fence) -> int | None:
        granted = self._granted.get(id(fence))
        return None if granted is None or granted[0] is not fence else granted[2]

    def describe(self, processor: str, lane: int) -> str:
        """Who holds the lease now, as the audit saw it."""
        tenure = self.tenures.get((processor, lane))
        if tenure is None:
            return "it was never granted"
        if tenure.owner is None:
            return f"tenure {tenure.number} was released"
        state = "runs" if tenure.runs(self.clock()) else "ran"
        return f"tenure {tenure.number} is {tenure.owner}'s and {state} until {tenure.expires:g} s"
