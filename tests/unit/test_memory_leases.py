"""The in-memory lease table (PostgreSQL's rules on a clock it is given) and its fenced batch
commit on the memory store: a batch commits only under the lane's current lease, at the
checkpoint it read, over the view rows it read — else nothing of it is written."""

from __future__ import annotations

import pytest

from tillflow.engine import (
    BatchEffects,
    CheckpointConflict,
    Emitted,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
)
from tillflow.engine.errors import LeaseLost, ViewRowChanged
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.memory_leases import MemoryLeases


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases(clock: Clock) -> MemoryLeases:
    return MemoryLeases(clock)


def _effects(view: str = "totals", value: bytes = b"1", seen: bytes | None = None) -> BatchEffects:
    effects = BatchEffects()
    effects.emitted.append(Emitted("effects-1", [NewEvent("Effect", {"n": 1})]))
    effects.views[(view, "all")] = value
    effects.read[(view, "all")] = seen
    return effects


def _nothing_written(store: MemoryEventStore) -> None:
    assert store.checkpoint("p", 0) == 0
    assert store.head(0) == 0
    assert store.read_view("totals", "all") is None


def test_a_lease_is_taken_once_until_it_expires_then_at_the_next_epoch(
    leases: MemoryLeases, clock: Clock
) -> None:
    assert leases.acquire("p", 0, "w1", 3) == Fence("w1", 1)
    assert leases.acquire("p", 0, "w2", 3) is None
    assert leases.acquire("p", 1, "w2", 3) == Fence("w2", 1)
    clock.now += 2.9
    assert leases.acquire("p", 0, "w2", 3) is None
    clock.now += 0.1  # exactly at the expiry: over, as on PostgreSQL (expires_at > now)
    assert leases.acquire("p", 0, "w2", 3) == Fence("w2", 2)
    assert not leases.holds("p", 0, Fence("w1", 1))
    assert leases.holds("p", 0, Fence("w2", 2))


def test_renewing_extends_only_unexpired_leases_of_the_owner(
    leases: MemoryLeases, clock: Clock
) -> None:
    leases.acquire("p", 0, "w1", 3)
    leases.acquire("q", 0, "w1", 3)
    leases.acquire("p", 1, "w2", 3)
    clock.now += 2
    assert leases.renew("w1", 3) == {("p", 0): Fence("w1", 1), ("q", 0): Fence("w1", 1)}
    clock.now += 2  # w1's renewed at 102 until 105; w2's expired at 103
    assert leases.renew("w2", 3) == {}
    assert leases.holds("p", 0, Fence("w1", 1))
    assert not leases.holds("p", 1, Fence("w2", 1))


def test_release_and_resign_free_the_lanes_at_once_but_only_for_their_fence(
    leases: MemoryLeases,
) -> None:
    leases.acquire("p", 0, "w1", 3)
    leases.acquire("p", 1, "w1", 3)
    assert not leases.release("p", 0, Fence("w1", 7))
    assert not leases.release("p", 0, Fence("w2", 1))
    assert leases.release("p", 0, Fence("w1", 1))
    assert leases.acquire("p", 0, "w2", 3) == Fence("w2", 2)
    leases.heartbeat("w1", 3)
    assert leases.resign("w1") == 1
    assert leases.live_workers() == 0
    assert leases.acquire("p", 1, "w2", 3) == Fence("w2", 2)


def test_live_workers_are_those_whose_heartbeat_has_not_expired(
    leases: MemoryLeases, clock: Clock
) -> None:
    leases.heartbeat("w1", 3)
    clock.now += 1
    leases.heartbeat("w2", 3)
    assert leases.live_workers() == 2
    clock.now += 2.5
    assert leases.live_workers() == 1


def test_the_live_workers_of_a_group_are_those_whose_last_heartbeat_named_it(
    leases: MemoryLeases, clock: Clock
) -> None:
    leases.heartbeat("w1", 3, ["inventory", "reporting"])
    leases.heartbeat("w2", 3, ["inventory"])
    leases.heartbeat("w3", 3)
    groups = ("inventory", "reporting", "stock")
    assert leases.live_workers() == 3
    assert [leases.live_workers(group) for group in groups] == [2, 1, 0]
    leases.heartbeat("w1", 3, ["stock"])
    assert [leases.live_workers(group) for group in groups] == [1, 0, 1]
    clock.now += 3
    assert [leases.live_workers(group) for group in groups] == [0, 0, 0]


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_a_ttl_that_is_not_a_positive_number_is_refused(leases: MemoryLeases, ttl: float) -> None:
    with pytest.raises(ValueError, match="TTL"):
        leases.acquire("p", 0, "w1", ttl)


def test_a_batch_under_its_lease_commits(leases: MemoryLeases) -> None:
    store = MemoryEventStore()
    fence = leases.acquire("p", 0, "w1", 3)
    assert fence is not None
    leases.fenced_commit(store, fence)("p", 0, 0, 4, _effects())
    assert store.checkpoint("p", 0) == 4
    assert store.read_view("totals", "all") == b"1"
    assert store.head(0) == 1


def test_a_batch_under_an_expired_lease_is_fenced_out_with_nothing_written(
    leases: MemoryLeases, clock: Clock
) -> None:
    store = MemoryEventStore()
    fence = leases.acquire("p", 0, "w1", 3)
    assert fence is not None
    clock.now += 3
    with pytest.raises(LeaseLost) as lost:
        leases.fenced_commit(store, fence)("p", 0, 0, 4, _effects())
    assert (lost.value.owner, lost.value.epoch) == ("w1", 1)
    assert isinstance(lost.value, CheckpointConflict)  # a runtime drops its cached state
    assert leases.refused == 1
    _nothing_written(store)


def test_a_batch_of_an_earlier_epoch_of_the_same_owner_is_fenced_out(
    leases: MemoryLeases, clock: Clock
) -> None:
    """The owner took the lane again after its lease expired: the batch it read before is
    from another epoch, and the checkpoint alone would let it in."""
    store = MemoryEventStore()
    old = leases.acquire("p", 0, "w1", 3)
    assert old is not None
    clock.now += 5
    assert leases.acquire("p", 0, "w1", 3) == Fence("w1", 2)
    with pytest.raises(LeaseLost):
        leases.fenced_commit(store, old)("p", 0, 0, 4, _effects())
    _nothing_written(store)


def test_a_batch_from_a_stale_checkpoint_conflicts_with_nothing_written(
    leases: MemoryLeases,
) -> None:
    """Checked before the rows, as on PostgreSQL: a stale batch is a checkpoint conflict
    (the lane's state is dropped), not a row to redo."""
    store = MemoryEventStore()
    fence = leases.acquire("p", 0, "w1", 3)
    assert fence is not None
    store.commit_batch("q", 0, 0, 1, BatchEffects(views={("totals", "all"): b"5"}))
    with pytest.raises(CheckpointConflict) as conflict:
        leases.fenced_commit(store, fence)("p", 0, 2, 4, _effects(seen=None))
    assert type(conflict.value) is CheckpointConflict
    assert (conflict.value.expected, conflict.value.actual) == (2, 0)
    assert store.checkpoint("p", 0) == 0
    assert store.head(0) == 0
    assert store.read_view("totals", "all") == b"5"


def test_a_batch_whose_view_row_changed_since_it_read_it_is_refused_with_nothing_written(
    leases: MemoryLeases,
) -> None:
    store = MemoryEventStore()
    fence = leases.acquire("p", 0, "w1", 3)
    other = leases.acquire("p", 1, "w2", 3)
    assert fence is not None and other is not None
    changed = BatchEffects(views={("totals", "all"): b"5"})
    leases.fenced_commit(store, other)("p", 1, 0, 1, changed)  # another lane's batch
    with pytest.raises(ViewRowChanged):
        leases.fenced_commit(store, fence)("p", 0, 0, 4, _effects(seen=None))
    assert store.checkpoint("p", 0) == 0
    assert store.head(0) == 0
    assert store.read_view("totals", "all") == b"5"
    leases.fenced_commit(store, fence)("p", 0, 0, 4, _effects(value=b"6", seen=b"5"))
    assert store.read_view("totals", "all") == b"6"


def test_two_keepers_share_the_lanes_and_the_survivor_takes_over_after_the_expiry(
    leases: MemoryLeases, clock: Clock
) -> None:
    store = MemoryEventStore(4)

    def count(event: RecordedEvent, session: Session) -> None:
        session.put("counts", "all", (session.get("counts", "all") or 0) + 1)

    def keeper(owner: str) -> LeaseKeeper:
        processor = Processor("p", count)
        lanes = {"p": [LaneProcessor(store, processor, lane) for lane in range(4)]}
        return LeaseKeeper(leases, owner, lanes, 3, lambda f: leases.fenced_commit(store, f))

    first, second = keeper("w1"), keeper("w2")
    for each in (first, second, first, second):
        each.tick()
    assert sorted([*first.held, *second.held]) == [0, 1, 2, 3]
    assert len(first.held) == len(second.held) == 2
    clock.now += 2
    second.tick()
    clock.now += 1.5  # first's leases and heartbeat expired, second's not
    second.tick()
    assert sorted(second.held) == [0, 1, 2, 3]
