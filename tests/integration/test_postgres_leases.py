"""Leases per (processor group, lane) on PostgreSQL: acquisition, renewal, expiry by the
database clock, epochs, fenced batch commits, resignation on SIGTERM, migration of a
version-1 schema. Short TTLs (1 s) keep it quick; every wait polls a condition."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tillflow.engine import BatchEffects, CheckpointConflict
from tillflow.engine.postgres import (
    SCHEMA_VERSION,
    Fence,
    LeaseLost,
    PostgresEventStore,
    fair_share,
)
from tillflow.engine.postgres.leases import FENCE

SHORT = 1.0
LONG = 60.0


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(postgres_url, lanes=4)
    try:
        yield opened
    finally:
        opened.close()


def expired(store: PostgresEventStore, lane: int) -> Callable[[], bool]:
    return lambda: all(r.remaining <= 0 for r in store.leases.rows() if r.lane == lane)


def test_a_free_lease_is_acquired_once_then_held(store: PostgresEventStore) -> None:
    assert store.leases.acquire("inventory", 0, "a", LONG) == Fence("a", 1)
    assert store.leases.acquire("inventory", 0, "b", LONG) is None
    assert store.leases.acquire("inventory", 0, "a", LONG) is None  # renewing is renew()
    assert store.leases.acquire("report", 0, "b", LONG) == Fence("b", 1)  # another group
    [inventory, report] = store.leases.rows()
    assert (inventory.processor, inventory.lane, inventory.owner, inventory.epoch) == (
        "inventory",
        0,
        "a",
        1,
    )
    assert inventory.held and report.owner == "b"
    assert 0 < inventory.remaining <= LONG


def test_renewal_extends_only_unexpired_leases(store: PostgresEventStore) -> None:
    store.leases.acquire("g", 0, "a", SHORT)
    store.leases.acquire("g", 1, "a", LONG)
    assert store.leases.renew("a", LONG) == {("g", 0): Fence("a", 1), ("g", 1): Fence("a", 1)}
    assert all(row.remaining > SHORT for row in store.leases.rows())
    store.leases.acquire("g", 2, "a", SHORT)
    eventually(expired(store, 2))
    held = store.leases.renew("a", LONG)
    assert sorted(held) == [("g", 0), ("g", 1)]  # lane 2 lapsed: lost, not revived
    assert store.leases.acquire("g", 2, "b", LONG) == Fence("b", 2)


def test_a_lease_expires_by_the_database_clock_and_the_epoch_moves_on(
    store: PostgresEventStore,
) -> None:
    assert store.leases.acquire("g", 0, "a", SHORT) == Fence("a", 1)
    [row] = store.leases.rows()
    [(database_now,)] = query_store_clock(store)
    assert abs((row.expires_at - database_now).total_seconds() - SHORT) < 0.5
    taken: list[Fence] = []

    def take() -> bool:
        fence = store.leases.acquire("g", 0, "b", LONG)
        if fence is not None:
            taken.append(fence)
        return fence is not None

    eventually(take)
    assert taken == [Fence("b", 2)]
    assert store.leases.release("g", 0, Fence("b", 2))
    assert not store.leases.release("g", 0, Fence("b", 2))  # already let go
    assert store.leases.acquire("g", 0, "a", LONG) == Fence("a", 3)


def query_store_clock(store: PostgresEventStore) -> list[tuple[Any, ...]]:
    with store._pool.connection() as conn:  # the database's clock, not this process's
        rows: list[tuple[Any, ...]] = conn.execute("SELECT clock_timestamp()").fetchall()
        return rows


def test_a_worker_whose_lease_was_taken_over_commits_nothing(
    store: PostgresEventStore,
) -> None:
    old = store.leases.acquire("g", 0, "a", SHORT)
    assert old is not None
    store.commit_batch("g", 0, 0, 1, BatchEffects(views={("v", "1"): b"a"}), fence=old)
    eventually(lambda: store.leases.acquire("g", 0, "b", LONG) is not None)
    new = Fence("b", old.epoch + 1)
    with pytest.raises(LeaseLost) as caught:  # the paused old owner wakes up
        store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "2"): b"a"}), fence=old)
    assert (caught.value.owner, caught.value.epoch, caught.value.lane) == ("a", 1, 0)
    assert "rolled back" in str(caught.value)
    assert store.checkpoint("g", 0) == 1
    assert dict(store.view_rows("v")) == {"1": b"a"}
    store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "2"): b"b"}), fence=new)
    assert dict(store.view_rows("v")) == {"1": b"a", "2": b"b"}


def test_an_expired_lease_fences_even_before_anyone_takes_it(
    store: PostgresEventStore,
) -> None:
    fence = store.leases.acquire("g", 1, "a", SHORT)
    assert fence is not None
    eventually(expired(store, 1))
    with pytest.raises(LeaseLost):
        store.commit_batch("g", 1, 0, 1, BatchEffects(views={("v", "k"): b"x"}), fence=fence)
    assert store.checkpoint("g", 1) == 0
    assert list(store.view_rows("v")) == []


def test_a_fence_still_needs_the_checkpoint_to_match(store: PostgresEventStore) -> None:
    fence = store.leases.acquire("g", 0, "a", LONG)
    assert fence is not None
    store.commit_batch("g", 0, 0, 3, BatchEffects(), fence=fence)
    with pytest.raises(CheckpointConflict):
        store.commit_batch("g", 0, 0, 3, BatchEffects(), fence=fence)


def test_without_the_fence_a_woken_old_owner_commits_under_the_new_owners_lease(
    store: PostgresEventStore,
) -> None:
    """Negative control: the same paused-then-woken owner, committing without its fence
    (the checkpoint compare-and-set alone), lands its batch although the lane is someone
    else's: the new owner, which read checkpoint 1 at takeover and handled event 2 too,
    sees that event applied by a worker that no longer owned it, and its own batch of
    the same event is refused."""
    old = store.leases.acquire("g", 0, "a", SHORT)
    assert old is not None
    store.commit_batch("g", 0, 0, 1, BatchEffects(), fence=old)
    eventually(lambda: store.leases.acquire("g", 0, "b", LONG) is not None)
    new = Fence("b", old.epoch + 1)
    assert store.checkpoint("g", 0) == 1  # what the new owner starts from
    store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "2"): b"a"}))  # lands
    assert dict(store.view_rows("v")) == {"2": b"a"}
    with pytest.raises(CheckpointConflict):
        store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "2"): b"b"}), fence=new)


def test_a_takeover_waits_for_a_batch_committing_under_the_lease(
    store: PostgresEventStore, postgres_url: str
) -> None:
    """The fence locks the lease row until the batch commits, so a takeover (after the
    expiry) cannot slip in between the check and the commit."""
    fence = store.leases.acquire("g", 0, "a", SHORT)
    assert fence is not None
    with psycopg.connect(postgres_url) as holder:
        checked = holder.execute(FENCE, ("g", 0, fence.owner, fence.epoch))  # mid-batch
        assert checked.fetchone() == (1,)
        eventually(expired(store, 0))
        taken: list[Fence | None] = []
        thread = threading.Thread(
            target=lambda: taken.append(store.leases.acquire("g", 0, "b", LONG))
        )
        thread.start()
        eventually(lambda: lock_waiters(postgres_url) == 1)
        assert taken == []
        holder.commit()
    thread.join(timeout=15)
    assert taken == [Fence("b", 2)]


def lock_waiters(url: str) -> int:
    [(count,)] = query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'INSERT INTO leases%%'",
    )
    return int(count)


_WORKER = """
import signal, sys, threading
from tillflow.engine.postgres import PostgresEventStore

store = PostgresEventStore(sys.argv[1])
for lane in range(4):
    assert store.leases.acquire("g", lane, "child", 60.0) is not None
store.leases.heartbeat("child", 60.0)
done = threading.Event()
def resign(signum, frame):
    store.leases.resign("child")
    done.set()
signal.signal(signal.SIGTERM, resign)
print("ready", flush=True)
done.wait()
store.close()
"""


def test_sigterm_resigns_so_others_take_the_lanes_at_once(
    store: PostgresEventStore, postgres_url: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKER, postgres_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert store.leases.live_workers() == 1
        assert [store.leases.acquire("g", lane, "b", LONG) for lane in range(4)] == [None] * 4
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 0
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    # 60 s leases: only the resignation can have freed them
    assert [store.leases.acquire("g", lane, "b", LONG) for lane in range(4)] == [Fence("b", 2)] * 4
    assert store.leases.live_workers() == 0


def test_live_workers_counts_unexpired_heartbeats(store: PostgresEventStore) -> None:
    store.leases.heartbeat("a", LONG)
    store.leases.heartbeat("b", SHORT)
    assert store.leases.live_workers() == 2
    eventually(lambda: store.leases.live_workers() == 1)
    store.leases.heartbeat("b", LONG)
    assert store.leases.live_workers() == 2


def test_the_live_workers_of_a_group_are_those_whose_last_heartbeat_named_it(
    store: PostgresEventStore,
) -> None:
    store.leases.heartbeat("a", LONG, ["inventory", "reporting"])
    store.leases.heartbeat("b", LONG, ["inventory"])
    store.leases.heartbeat("c", SHORT)
    groups = ("inventory", "reporting", "stock")
    assert store.leases.live_workers() == 3
    assert [store.leases.live_workers(group) for group in groups] == [2, 1, 0]
    store.leases.heartbeat("a", LONG, ["stock"])
    assert [store.leases.live_workers(group) for group in groups] == [1, 0, 1]
    store.leases.heartbeat("b", SHORT, ["inventory"])
    eventually(lambda: store.leases.live_workers("inventory") == 0)
    assert store.leases.live_workers() == 1


def test_fair_share_is_the_ceiling_of_lanes_per_live_worker() -> None:
    assert [fair_share(16, n) for n in (0, 1, 2, 3, 5, 16, 17)] == [16, 16, 8, 6, 4, 1, 1]
    with pytest.raises(ValueError, match="negative"):
        fair_share(16, -1)


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf")])
def test_a_bad_ttl_is_refused_and_writes_nothing(store: PostgresEventStore, ttl: float) -> None:
    with pytest.raises(ValueError, match="lease TTL"):
        store.leases.acquire("g", 0, "a", ttl)
    with pytest.raises(ValueError, match="lease TTL"):
        store.leases.heartbeat("a", ttl)
    assert store.leases.rows() == [] and store.leases.live_workers() == 0


def test_a_version_1_schema_is_migrated_when_opened(postgres_url: str) -> None:
    PostgresEventStore(postgres_url, lanes=2).close()
    query(postgres_url, "DROP TABLE leases")
    query(postgres_url, "DROP TABLE workers")
    query(postgres_url, "DROP TABLE fenced_commits")
    query(postgres_url, "UPDATE tillflow_schema SET version = 1")
    reopened = PostgresEventStore(postgres_url)
    try:
        assert reopened.lane_count == 2
        assert reopened.leases.acquire("g", 0, "a", LONG) == Fence("a", 1)
    finally:
        reopened.close()
    assert query(postgres_url, "SELECT version FROM tillflow_schema") == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 6


def test_a_version_3_schema_gains_the_groups_of_workers_when_opened(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=2) as store:
        assert isinstance(store, PostgresEventStore)
        store.leases.acquire("g", 0, "a", LONG)
    query(postgres_url, "ALTER TABLE workers DROP COLUMN groups")
    query(postgres_url, "INSERT INTO workers VALUES ('old', now() + interval '1 minute')")
    query(postgres_url, "UPDATE tillflow_schema SET version = 3")
    with PostgresEventStore(postgres_url) as reopened:
        assert isinstance(reopened, PostgresEventStore)
        [lease] = reopened.leases.rows()  # kept
        assert (lease.owner, lease.epoch) == ("a", 1)
        assert reopened.leases.live_workers() == 1  # an old heartbeat runs no group
        assert reopened.leases.live_workers("g") == 0
        reopened.leases.heartbeat("new", LONG, ["g"])
        assert reopened.leases.live_workers("g") == 1
    assert query(postgres_url, "SELECT version FROM tillflow_schema") == [(SCHEMA_VERSION,)]
