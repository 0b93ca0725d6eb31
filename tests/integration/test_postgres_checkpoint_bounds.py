"""A batch bound by another processor's checkpoint (``BatchEffects.not_past``: a rebuild's
switch, bound by the live version) holds that checkpoint where it checked it until it
commits, on PostgreSQL's read-committed sessions: a batch moving it waits (the row locked
``FOR SHARE``), and so does the first batch of a checkpoint that has no row yet. Without
the hold, a live batch committing between the check and the switch would let readers see
the live version past the one they are switched to."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tillflow.engine import BatchEffects, EventStore, NewEvent
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.postgres.writer import _checkpoint_shared

DEADLINE = 30.0


def _waiting_on_a_lock(conn: psycopg.Connection[tuple[object, ...]], pid: int) -> bool:
    """Whether another session of this database waits on a lock ``pid`` holds."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND %s = ANY(pg_blocking_pids(pid))",
        (pid,),
    ).fetchone()
    return row is not None and int(str(row[0])) > 0


@pytest.mark.parametrize("first", [False, True], ids=["moving", "first-commit"])
def test_a_checkpoint_checked_by_a_bound_batch_cannot_move_until_it_commits(
    postgres_url: str, first: bool
) -> None:
    with PostgresEventStore(postgres_url, lanes=2) as store:
        _hold_and_move(store, postgres_url, first)


def _hold_and_move(store: EventStore, postgres_url: str, first: bool) -> None:
    store.append("s", [NewEvent("E"), NewEvent("E")])
    if not first:
        store.commit_batch("live", 0, 0, 1, BatchEffects())
    before = store.checkpoint("live", 0)
    moved = threading.Event()

    def live_batch() -> None:
        store.commit_batch("live", 0, before, before + 1, BatchEffects())
        moved.set()

    with (
        psycopg.connect(postgres_url, autocommit=True) as holder,
        psycopg.connect(postgres_url, autocommit=True) as watcher,
    ):
        with holder.transaction():
            assert _checkpoint_shared(holder, "live", 0) == before
            mover = threading.Thread(target=live_batch)
            mover.start()
            deadline = time.monotonic() + DEADLINE
            while not _waiting_on_a_lock(watcher, holder.info.backend_pid):
                assert not moved.is_set(), "the live batch moved a checkpoint held by a check"
                assert time.monotonic() < deadline, "the live batch neither waited nor moved"
                time.sleep(0.01)
            assert not moved.is_set()
        mover.join(DEADLINE)
    assert moved.is_set()
    assert store.checkpoint("live", 0) == before + 1
    assert store.checkpoints().get("live") == {0: before + 1}, "the held key left no row"
