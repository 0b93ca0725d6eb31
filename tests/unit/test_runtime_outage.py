"""A store that goes away under a running runtime: lanes wait it out with backoff, the
runtime says ``degraded`` (once in the log, not per retry) and resumes by itself; nothing
is committed on a failure, nothing counts against the handler's retry budget, every event
is handled exactly once in the end. And a lease keeper that cannot reach its table."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from tillflow.engine import (
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    State,
    StoreUnavailable,
)
from tillflow.engine.faults import FaultyStore
from tillflow.engine.lane_processor import CommitBatch, LaneProcessor
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.outage import OutageBackoff, StoreHealth, redact

QUICK = OutageBackoff(first=0.005, most=0.05)


class AwayStore(FaultyStore):
    """A memory store whose reads and commits raise :class:`StoreUnavailable` while
    :attr:`away` is set (appends still work: they stand for other processes' writes)."""

    def __init__(self, inner: MemoryEventStore) -> None:
        super().__init__(inner, self._before_commit)
        self.away = threading.Event()
        self.refused = 0

    def _check(self) -> None:
        if self.away.is_set():
            self.refused += 1
            raise StoreUnavailable("postgresql://till:secret@db/shop: connection refused")

    def _before_commit(self, processor: str, lane: int, expected: int, new: int) -> None:
        self._check()

    def head(self, lane: int) -> int:
        self._check()
        return super().head(lane)

    def read_view(self, view: str, key: str) -> bytes | None:
        self._check()
        return super().read_view(view, key)


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tillflow.outage"]


async def test_a_store_outage_degrades_and_resumes_without_failing_or_skipping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tillflow.outage")
    inner = MemoryEventStore(lane_count=2)
    store = AwayStore(inner)
    # the default policy stops at the first handler failure: an outage must not be one
    async with Runtime(store, [Processor("p", _count)], outage=QUICK) as runtime:
        await runtime.append("a", [NewEvent("A")])
        await runtime.drain(timeout=10)
        store.away.set()
        inner.append("a", [NewEvent("A")] * 3)
        inner.append("b", [NewEvent("A")] * 2)
        await eventually(lambda: store.refused >= 20)  # many retries...
        assert runtime.health.degraded
        status = runtime.health.status()
        assert status.state == "degraded" and status.since is not None
        assert status.last_error is not None and "secret" not in status.last_error
        rows = runtime.statistics()  # answers without the store
        assert {row.state for row in rows} == {State.DEGRADED.value}
        assert [row.failures for row in rows] == [0, 0]
        assert all(lane.attempts == 0 for lane in runtime.lanes["p"])
        assert sum(inner.checkpoint("p", lane) for lane in range(2)) == 1  # unmoved
        store.away.clear()
        await runtime.drain(timeout=10)
        await eventually(lambda: not runtime.health.degraded)
    assert inner.read_view("counts", "A") == b"6"  # each event once
    assert runtime.health.status().outages == 1
    assert runtime.health.retries >= 20
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines  # ...one line when it went, one when it came back
    assert "unavailable" in lines[0] and "secret" not in lines[0]
    assert "back after" in lines[1]


async def test_a_handler_read_failing_on_an_outage_commits_nothing_and_is_retried() -> None:
    inner = MemoryEventStore()
    store = AwayStore(inner)
    handled: list[int] = []

    def count_then_lose_the_store(event: RecordedEvent, session: Session) -> None:
        handled.append(event.position)
        if len(handled) == 1:
            store.away.set()  # the database goes away under the handler's first read
            threading.Timer(0.2, store.away.clear).start()
        _count(event, session)

    processor = Processor("p", count_then_lose_the_store)
    async with Runtime(store, [processor], outage=QUICK) as runtime:
        inner.append("a", [NewEvent("A")] * 3)
        await eventually(lambda: store.refused > 0)
        assert inner.checkpoint("p", 0) == 0  # nothing of the batch committed
        await runtime.drain(timeout=10)
        [lane] = runtime.lanes["p"]
        assert lane.state is not State.FAILED and lane.attempts == 0 and lane.failures == 0
    assert inner.read_view("counts", "A") == b"3"
    assert handled == [1, 1, 2, 3]  # the batch redone whole


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = OutageBackoff(first=0.05, most=5.0, jitter=0.2)
    assert 0.04 <= backoff.delay(0) <= 0.06
    assert 0.08 <= backoff.delay(1) <= 0.12
    assert all(4.0 <= backoff.delay(n) <= 5.0 for n in (10, 100, 10_000))
    assert len({backoff.delay(3) for _ in range(20)}) > 1


def test_errors_are_reported_without_passwords() -> None:
    assert redact("postgresql://till:s3cr%40t@db:5432/shop down") == (
        "postgresql://till:***@db:5432/shop down"
    )
    assert redact("host=db password=hunter2 dbname=shop") == "host=db password=*** dbname=shop"
    health = StoreHealth()
    health.failed("lane", StoreUnavailable("postgres://u:pw@h/d: gone"))
    assert health.last_error == "StoreUnavailable: postgres://u:***@h/d: gone"


class AwayTable:
    """An in-memory lease table that can be made unreachable."""

    def __init__(self) -> None:
        self.away = False
        self.owners: dict[tuple[str, int], tuple[str, int]] = {}
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.away:
            raise StoreUnavailable("database away")

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        self._check()
        _, epoch = self.owners.get((processor, lane), ("", 0))
        self.owners[(processor, lane)] = (owner, epoch + 1)
        return Fence(owner, epoch + 1)

    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]:
        self._check()
        return {key: Fence(o, e) for key, (o, e) in self.owners.items() if o == owner}

    def release(self, processor: str, lane: int, fence: Fence) -> bool:
        self._check()
        return True

    def resign(self, owner: str) -> int:
        self._check()
        return 0

    def heartbeat(self, owner: str, ttl: float, groups: Sequence[str] = ()) -> None:
        self._check()

    def live_workers(self, group: str | None = None) -> int:
        self._check()
        return 1


async def test_a_lease_keeper_retries_soon_drops_lanes_past_its_ttl_and_takes_them_again() -> None:
    store = MemoryEventStore(lane_count=2)
    lanes = {"p": [LaneProcessor(store, Processor("p", _count), lane) for lane in range(2)]}
    table = AwayTable()
    health = StoreHealth()

    def fenced(fence: Fence) -> CommitBatch:
        return store.commit_batch

    ttl = 1.5
    keeper = LeaseKeeper(table, "w1", lanes, ttl, fenced, health=health, outage=QUICK)
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.keep(stop))
    try:
        await eventually(lambda: len(keeper.held) == 2)
        epochs = {key: epoch for key, (_, epoch) in table.owners.items()}
        table.away = True
        calls = table.calls
        await eventually(lambda: health.degraded)
        await asyncio.sleep(ttl / 3)
        assert table.calls - calls >= 5  # retried sooner than a round every ttl / 3
        await eventually(lambda: not keeper.held)  # past its TTL: dropped locally
        assert not any(lane.leased for lane in lanes["p"])
        table.away = False
        await eventually(lambda: len(keeper.held) == 2 and not health.degraded)
        assert all(lane.leased for lane in lanes["p"])
        assert all(epoch == epochs[key] + 1 for key, (_, epoch) in table.owners.items())
    finally:
        stop.set()
        await task


async def test_when_one_finds_the_store_back_the_others_stop_waiting_out_their_backoff() -> None:
    inner = MemoryEventStore(lane_count=4)
    store = AwayStore(inner)
    slow = OutageBackoff(first=30.0, most=30.0)  # without a wake-up, no lane retries in time
    async with Runtime(store, [Processor("p", _count)], outage=slow) as runtime:
        store.away.set()
        for stream in ("a", "b", "c", "d", "e", "f"):
            inner.append(stream, [NewEvent("A")])
        await eventually(  # every lane waits
            lambda: all(row.state == State.DEGRADED.value for row in runtime.statistics())
        )
        store.away.clear()
        runtime.health.failed("keeper", StoreUnavailable("away"))  # as a lease keeper...
        runtime.health.recovered("keeper")  # ...that finds the store back
        await runtime.drain(timeout=5)
        await eventually(lambda: not runtime.health.degraded, timeout=5)
    assert inner.read_view("counts", "A") == b"6"
