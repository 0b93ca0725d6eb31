"""The lease audit: its own model of tenures, from a table's answers alone, catches a table
that breaks the lease rules and a batch that lands outside its tenure — even when the
table's epochs cannot tell the tenures apart."""

from __future__ import annotations

import pytest

from tillflow.engine.lease_audit import LeaseAudit
from tillflow.engine.leasing import Fence
from tillflow.engine.memory_leases import Lease, MemoryLeases


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class GrantsRunningLeases(MemoryLeases):
    """Broken: takes a lease whoever holds it."""

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        self._leases.pop((processor, lane), None)
        return super().acquire(processor, lane, owner, ttl)


class RenewsExpiredLeases(MemoryLeases):
    """Broken: renews an owner's leases even after they ran out."""

    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]:
        now = self.clock()
        for key, lease in self._leases.items():
            if lease.owner == owner:
                self._leases[key] = Lease(owner, lease.epoch, now + 1)
        return super().renew(owner, ttl)


class KeepsTheEpoch(MemoryLeases):
    """Broken: a lease taken again keeps its epoch."""

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        fence = super().acquire(processor, lane, owner, ttl)
        if fence is None:
            return None
        self._leases[(processor, lane)] = Lease(owner, 1, self.clock() + ttl)
        return Fence(owner, 1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_table_that_keeps_the_rules_gives_no_problem(clock: Clock) -> None:
    audit = LeaseAudit(MemoryLeases(clock), clock)
    first = audit.acquire("p", 0, "w1", 3)
    assert first is not None
    assert audit.acquire("p", 0, "w2", 3) is None
    clock.now = 2
    audit.renew("w1", 3)
    audit.landed("p", 0, first, "a batch")
    clock.now = 5.5
    assert audit.renew("w1", 3) == {}
    second = audit.acquire("p", 0, "w2", 3)
    assert second is not None
    assert audit.release("p", 0, second)
    assert audit.acquire("p", 0, "w1", 3) is not None
    audit.resign("w1")
    assert audit.take_problems() == []
    assert audit.describe("p", 0) == "tenure 3 was released"


def test_a_lease_granted_while_another_runs_is_a_problem(clock: Clock) -> None:
    audit = LeaseAudit(GrantsRunningLeases(clock), clock)
    audit.acquire("p", 0, "w1", 3)
    clock.now = 1
    audit.acquire("p", 0, "w2", 3)
    [problem] = audit.take_problems()
    assert "p@0 granted to w2 while w1's lease runs until 3 s" in problem


def test_a_lease_renewed_after_it_ran_out_is_a_problem(clock: Clock) -> None:
    audit = LeaseAudit(RenewsExpiredLeases(clock), clock)
    audit.acquire("p", 0, "w1", 3)
    clock.now = 4
    audit.renew("w1", 3)
    [problem] = audit.take_problems()
    assert "p@0 renewed for w1 at 4 s, but tenure 1 is w1's and ran until 3 s" in problem


def test_a_batch_of_an_earlier_tenure_is_caught_even_if_the_epoch_did_not_move(
    clock: Clock,
) -> None:
    """The table's fence (same owner, same epoch) would let this batch in: the audit counts
    tenures itself."""
    table = KeepsTheEpoch(clock)
    audit = LeaseAudit(table, clock)
    old = audit.acquire("p", 0, "w1", 3)
    clock.now = 4
    new = audit.acquire("p", 0, "w1", 3)
    assert old is not None and new is not None
    assert old == new and table.holds("p", 0, old)
    audit.landed("p", 0, new, "the new batch")
    audit.landed("p", 0, old, "the old batch")
    [problem] = audit.take_problems()
    assert problem.startswith("the old batch landed under tenure 1 (epoch 1) at 4 s")
    assert problem.endswith("but tenure 2 is w1's and runs until 7 s")


def test_a_batch_under_a_fence_never_granted_is_a_problem(clock: Clock) -> None:
    audit = LeaseAudit(MemoryLeases(clock), clock)
    audit.acquire("p", 0, "w1", 3)
    audit.landed("p", 0, Fence("w1", 1), "a forged batch")
    [problem] = audit.take_problems()
    assert "landed under a fence never granted" in problem


class ReleasesByOwnerOnly(MemoryLeases):
    """Broken: a release ignores the epoch of the fence it is given."""

    def release(self, processor: str, lane: int, fence: Fence) -> bool:
        lease = self._leases.get((processor, lane))
        if lease is None or lease.owner != fence.owner:
            return False
        return super().release(processor, lane, Fence(fence.owner, lease.epoch))


def test_a_release_with_the_fence_of_an_earlier_tenure_is_a_problem(clock: Clock) -> None:
    audit = LeaseAudit(ReleasesByOwnerOnly(clock), clock)
    old = audit.acquire("p", 0, "w1", 3)
    clock.now = 4
    assert old is not None and audit.acquire("p", 0, "w1", 3) is not None
    assert audit.release("p", 0, old)
    [problem] = audit.take_problems()
    assert "p@0 released by w1 with a fence of another tenure" in problem
