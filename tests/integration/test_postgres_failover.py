"""Failover and hand-over on a real PostgreSQL cluster: a lane taken over starts with a
small batch whatever its backlog, a lane let go is not stepped and a batch under way on it
is abandoned (so a SIGTERMed worker resigns and stops at once), a worker gone without
resigning has its lanes taken as soon as its leases expire, not at the next round (and
a round tries only the lanes not held), and a
batch that loses to another worker's commit is redone in its own turn, and the lanes that
share a thread let a lane just taken over go first."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tillflow.cli.leased import lease_keeper, leased
from tillflow.engine import (
    BatchEffects,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    State,
    lanes,
)
from tillflow.engine.lane_processor import FIRST_BATCH, LaneProcessor
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.runtime import PollBackoff

SLOW = PollBackoff(first=30.0, most=30.0)
"""A runtime that looks at a lane it is not told about every 30 s."""
WAIT = 30.0
"""Deadline of every wait for a condition (a busy machine is slow, never this slow)."""


class Gate:
    """A handler that blocks on its first event until ``release`` is true (at most
    :data:`WAIT` seconds: ``released`` says whether it was), and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.released = False
        self.release: Callable[[], bool] = lambda: True

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            deadline = time.monotonic() + WAIT
            while not (released := self.release()) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.released = released


def opened(url: str, lanes: int) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(url, lanes=lanes) as store:
        assert isinstance(store, PostgresEventStore)
        yield store


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    yield from opened(postgres_url, 1)


def keeper(store: PostgresEventStore, processor: Processor, ttl: float = 30.0) -> LeaseKeeper:
    runtime = Runtime(store, [processor])
    found = lease_keeper(store, runtime, ttl)
    assert found is not None
    return found


def lane_of(keeper: LeaseKeeper, name: str, lane: int = 0) -> LaneProcessor:
    return keeper._lanes[name][lane]


def backlog(store: PostgresEventStore, events: int, lane: int = 0) -> None:
    """``events`` events on ``lane``, 100 a stream."""
    count = store.lane_count
    streams = (f"s{n}" for n in itertools.count() if lanes.lane_of(f"s{n}", count) == lane)
    for start, stream in zip(range(0, events, 100), streams, strict=False):
        store.append(stream, [NewEvent("Tick") for _ in range(min(100, events - start))])


def test_a_lane_taken_over_starts_with_a_small_batch_whatever_its_backlog(
    store: PostgresEventStore,
) -> None:
    backlog(store, 600)
    counter = Processor("counter", lambda event, session: None, batch_size=1000)
    first, second = keeper(store, counter), keeper(store, counter)
    first.tick()
    taken = lane_of(first, "counter")
    assert [taken.step().scanned for _ in range(3)] == [
        FIRST_BATCH,
        2 * FIRST_BATCH,
        4 * FIRST_BATCH,
    ]
    first.resign()
    second.tick()
    assert lane_of(second, "counter").step().scanned == FIRST_BATCH  # not the 600 - 224 left
    assert store.checkpoint("counter", 0) == 8 * FIRST_BATCH


def test_a_batch_under_way_on_a_lane_let_go_is_abandoned(store: PostgresEventStore) -> None:
    """The lease is resigned while the handler is in the batch's first event: the batch
    stops there, nothing is committed, and no commit reaches the fence."""
    backlog(store, 10)
    gate = Gate()
    only = keeper(store, Processor("gated", gate))
    only.tick()
    lane = lane_of(only, "gated")
    gate.release = lambda: not lane.leased
    result: list[int] = []
    stepping = threading.Thread(target=lambda: result.append(lane.step().scanned))
    stepping.start()
    assert gate.entered.wait(WAIT)
    only.resign()
    stepping.join(WAIT)
    assert result == [0] and gate.calls == 1 and gate.released
    assert lane.state is State.ELSEWHERE
    assert store.checkpoint("gated", 0) == 0
    assert store.leases.overview().fenced == {}  # never even tried to commit


class Untouchable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a lane not held read the store: {name}")


def test_a_lane_let_go_is_not_stepped(store: PostgresEventStore) -> None:
    backlog(store, 10)
    gate = Gate()
    only = keeper(store, Processor("gated", gate))
    only.tick()
    only.resign()
    lane = lane_of(only, "gated")
    lane.store = Untouchable()  # type: ignore[assignment]
    assert lane.step().scanned == 0
    assert gate.calls == 0 and lane.state is State.ELSEWHERE


async def test_a_stopping_worker_resigns_before_its_batch_in_hand_ends(
    store: PostgresEventStore,
) -> None:
    """``tillflow worker``'s way out (SIGTERM): the leases are resigned first, then the
    runtime stops. The batch in hand, blocked until its lane is let go, is abandoned at
    its next event: were the runtime waited for first, it would block until the deadline."""
    backlog(store, 10)
    gate = Gate()
    runtime = Runtime(store, [Processor("gated", gate)])
    lane = runtime.lanes["gated"][0]
    gate.release = lambda: not lane.leased
    async with leased(store, runtime, ttl=30.0):
        assert await asyncio.to_thread(gate.entered.wait, WAIT)
    assert gate.released and gate.calls == 1
    assert store.checkpoint("gated", 0) == 0
    assert store.leases.overview().fenced == {}
    assert [row.owner for row in store.leases.rows()] == [None]  # resigned


async def test_a_gone_workers_lanes_are_taken_as_soon_as_its_leases_expire(
    store: PostgresEventStore,
) -> None:
    """The survivor's rounds are 10 s apart (TTL 30 s) and the gone worker never released
    anything (no hint): only a round at the gone worker's expiry takes its lane in time."""
    counter = Processor("counter", lambda event, session: None)
    gone = keeper(store, counter, ttl=2.0)
    survivor = keeper(store, counter, ttl=30.0)
    gone.tick()  # holds the lane, then stops without resigning (SIGKILL)
    killed = time.monotonic()
    stop = asyncio.Event()
    keeping = asyncio.create_task(survivor.keep(stop))
    try:
        deadline = killed + 2.0 + 2.0
        while not survivor.held:
            assert time.monotonic() < deadline, "the lane was not taken at its expiry"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await keeping


def test_next_expiry_is_the_soonest_of_the_other_workers(store: PostgresEventStore) -> None:
    leases = store.leases
    assert leases.next_expiry("me") is None
    leases.heartbeat("me", 1.0)
    leases.acquire("counter", 0, "me", 1.0)
    assert leases.next_expiry("me") is None  # its own do not count
    leases.heartbeat("other", 20.0)
    assert 10.0 < (leases.next_expiry("me") or 0.0) <= 20.0
    leases.acquire("other-group", 0, "other", 5.0)
    assert 0.0 < (leases.next_expiry("me") or 0.0) <= 5.0
    leases.resign("other")
    assert leases.next_expiry("me") is None


def test_a_batch_that_loses_to_another_workers_commit_is_redone_in_its_turn(
    store: PostgresEventStore,
) -> None:
    """Another worker's lane commits a new total while this batch has read the old one: the
    commit is refused (``ViewRowChanged``) and the step redoes the batch, smaller, against
    the new total, instead of raising and waiting for its next turn."""
    backlog(store, 40)
    passes = 0

    def count(event: RecordedEvent, session: Session) -> None:
        nonlocal passes
        total = session.get("v", "total") or 0
        if passes == 0:  # the other worker commits meanwhile, once
            store.commit_batch("other", 0, 0, 0, BatchEffects(views={("v", "total"): b"100"}))
        passes += 1
        session.put("v", "total", total + 1)

    only = keeper(store, Processor("counter", count))
    only.tick()
    result = lane_of(only, "counter").step()
    assert result.scanned == FIRST_BATCH // 4  # redone a quarter the size
    assert store.read_view("v", "total") == str(100 + FIRST_BATCH // 4).encode()
    assert store.leases.overview().fenced == {}


@pytest.fixture
def two_lanes(postgres_url: str) -> Iterator[PostgresEventStore]:
    yield from opened(postgres_url, 2)


def test_the_other_lanes_give_way_to_a_lane_just_taken_over(
    two_lanes: PostgresEventStore,
) -> None:
    """Both lanes have a backlog. A holds lane 0, B lane 1; B resigns and A takes lane 1:
    A's lane 0 (same processor, same thread) waits until lane 1 has committed a batch, so
    that a lane taken over is served next, not after a batch of every other lane."""
    store = two_lanes
    backlog(store, 300, lane=0)
    backlog(store, 300, lane=1)
    counter = Processor("counter", lambda event, session: None)
    first, second = keeper(store, counter), keeper(store, counter)
    for each in (first, second, first, second):  # A alone takes both, then hands lane 1 over
        each.tick()
    assert first.lanes_of("counter") == [0] and second.lanes_of("counter") == [1]
    held = lane_of(first, "counter", 0)
    assert held.step().scanned == FIRST_BATCH
    second.resign()
    first.tick()
    taken = lane_of(first, "counter", 1)
    assert taken.leased
    assert held.step().scanned == 0  # gives way
    assert taken.step().scanned == FIRST_BATCH
    assert held.step().scanned == 2 * FIRST_BATCH  # its turn again


def test_giving_way_lasts_a_second_at_most(
    two_lanes: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane taken over that is never stepped (its task stuck) holds the others back only
    for ``GIVE_WAY`` seconds."""
    monkeypatch.setattr("tillflow.engine.lane_processor.GIVE_WAY", 0.2)
    store = two_lanes
    backlog(store, 100, lane=0)
    only = keeper(store, Processor("counter", lambda event, session: None))
    ticked = time.monotonic()
    only.tick()  # takes both lanes: both just taken over
    held = lane_of(only, "counter", 0)
    assert held.step().scanned == FIRST_BATCH  # served: no longer just taken over
    assert held.step().scanned == 0  # gives way: lane 1 not served yet
    while held.step().scanned == 0:
        assert time.monotonic() - ticked < WAIT
        time.sleep(0.01)
    assert time.monotonic() - ticked >= 0.2


async def test_lanes_granted_are_stepped_at_once_not_at_their_next_poll(
    store: PostgresEventStore,
) -> None:
    """The runtime polls a lane it does not hold every 30 s here; the keeper's first round
    grants it, and the grant wakes the lane: its backlog is handled within seconds."""
    backlog(store, 10)
    runtime = Runtime(store, [Processor("counter", lambda event, session: None)], poll=SLOW)
    async with leased(store, runtime, ttl=30.0):
        started = time.monotonic()
        while store.checkpoint("counter", 0) < 10:
            assert time.monotonic() - started < 10.0, "the lane waited for its next poll"
            await asyncio.sleep(0.01)


def test_a_round_tries_only_the_lanes_not_held(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A joins alone and takes the 8 lanes; B joins, A hands 4 over: B's round tries to
    acquire those 4 only, not A's 4 as well (each a statement, which a loaded server
    makes slow)."""
    counter = Processor("counter", lambda event, session: None)
    with (
        PostgresEventStore(postgres_url, lanes=8) as store,
        PostgresEventStore(postgres_url) as other,
    ):
        assert isinstance(store, PostgresEventStore) and isinstance(other, PostgresEventStore)
        first, second = keeper(store, counter), keeper(other, counter)
        tried: list[int] = []
        acquire = other.leases.acquire

        def counted(processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
            tried.append(lane)
            return acquire(processor, lane, owner, ttl)

        monkeypatch.setattr(other.leases, "acquire", counted)
        first.tick()
        second.tick()  # a share of 4, none free
        assert tried == []
        first.tick()  # hands 4 over
        second.tick()
        assert sorted(tried) == second.lanes_of("counter") and len(tried) == 4
