"""The group committer's queue is bounded: a flood of appenders (threads and coroutines
that queue jobs without awaiting their results) waits for room instead of growing the
queue, appenders get room in arrival order, and every job still runs exactly once."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tillflow.engine import SqliteEventStore, StoreClosed
from tillflow.engine.group_commit import DEFAULT_MAX_QUEUED, GroupCommitter, Job

DEADLINE = 30.0
"""Generous: how long any awaited condition may take on a busy machine."""
BOUND = 5
PRODUCERS = 8
"""Threads, and as many coroutines, each queueing ``EACH`` jobs without awaiting them."""
EACH = 4


class RecordingQueue(collections.deque[Any]):
    """The committer's queue, remembering the longest it ever was."""

    longest = 0

    def append(self, item: Any) -> None:
        super().append(item)
        self.longest = max(self.longest, len(self))


class Writer:
    """A ``run_batch`` that holds each group until released and records every job run."""

    def __init__(self) -> None:
        self.release = threading.Semaphore(0)
        self.ran: list[object] = []
        self.committers: list[GroupCommitter] = []
        self.holding = threading.Event()
        """Set once the writer holds a group."""

    def run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        self.holding.set()
        assert self.release.acquire(timeout=DEADLINE), "the test never released a group"
        outcomes = [job(None) for job in jobs]
        self.ran.extend(outcomes)
        return outcomes

    def open(self) -> None:
        """Let every group from now on through."""
        self.release.release(1_000_000)


@pytest.fixture
def writer() -> Iterator[Writer]:
    """A held writer, let go and closed after the test whatever happened."""
    held = Writer()
    yield held
    held.open()
    for commits in held.committers:
        commits.close()


def committer(writer: Writer, max_jobs: int = 2) -> tuple[GroupCommitter, RecordingQueue]:
    """A committer of ``BOUND`` queued jobs on ``writer``, and its watched queue."""
    made = GroupCommitter(writer.run_batch, lambda: None, max_jobs=max_jobs, max_queued=BOUND)
    queue = RecordingQueue()
    made._queue = queue  # before any job: the test watches every append
    writer.committers.append(made)
    return made, queue


def job(label: object) -> Job:
    return lambda connection: label


async def filled(commits: GroupCommitter, writer: Writer) -> list[asyncio.Future[Any]]:
    """Jobs 0, 1, ...: until the writer holds a group and the queue is full."""
    queued = [await commits.submit_async(job(0))]
    assert await asyncio.to_thread(writer.holding.wait, DEADLINE), "the writer never started"
    while commits.statistics()["queued"] < BOUND:
        queued.append(await commits.submit_async(job(len(queued))))
    return queued


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a deadline, not a sleep)."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)


def until_sync(condition: Callable[[], bool], what: str) -> None:
    """:func:`until` for a test without an event loop."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


async def outcome(future: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> Any:
    if isinstance(future, concurrent.futures.Future):
        future = asyncio.wrap_future(future)
    return await asyncio.wait_for(future, DEADLINE)


async def test_a_flood_of_appenders_waits_at_the_bound_and_every_job_runs_once(
    writer: Writer,
) -> None:
    commits, queue = committer(writer)
    finished: list[str] = []  # producers done queueing (list.append is atomic)
    futures: dict[object, concurrent.futures.Future[Any] | asyncio.Future[Any]] = {}

    def thread_producer(number: int) -> None:
        for index in range(EACH):
            futures[("thread", number, index)] = commits.submit(job(("thread", number, index)))
        finished.append(f"thread {number}")

    async def task_producer(number: int) -> None:
        for index in range(EACH):
            label = ("task", number, index)
            futures[label] = await commits.submit_async(job(label))
        finished.append(f"task {number}")

    threads = [threading.Thread(target=thread_producer, args=(n,)) for n in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    tasks = [asyncio.create_task(task_producer(n)) for n in range(PRODUCERS)]
    # the writer holds its first group: each producer ends up done or waiting for room
    await until(
        lambda: len(finished) + commits.statistics()["waiting"] == 2 * PRODUCERS,
        "every producer done or waiting",
    )
    assert queue.longest <= BOUND, f"the queue grew to {queue.longest} (bound {BOUND})"
    assert commits.statistics()["queued"] == BOUND
    assert len(finished) * EACH <= BOUND + 2  # at most the queue and the held group
    assert commits.statistics()["waiting"] == 2 * PRODUCERS - len(finished) > 0
    writer.open()
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    for thread in threads:
        thread.join(DEADLINE)
    results = {label: await outcome(future) for label, future in futures.items()}
    commits.close()
    assert queue.longest == BOUND, queue.longest  # the bound held, and was reached
    assert len(results) == 2 * PRODUCERS * EACH
    assert all(result == label for label, result in results.items())
    assert sorted(map(repr, writer.ran)) == sorted(map(repr, results))  # each ran once
    statistics = commits.statistics()
    jobs = 2 * PRODUCERS * EACH
    assert (statistics["jobs"], statistics["queued"], statistics["waiting"]) == (jobs, 0, 0)


async def test_appenders_get_room_in_the_order_they_arrived(writer: Writer) -> None:
    commits, _ = committer(writer, max_jobs=1)
    first = await filled(commits, writer)
    total = len(first) + 2 * BOUND
    late = [asyncio.create_task(commits.submit_async(job(n))) for n in range(len(first), total)]
    await until(lambda: commits.statistics()["waiting"] == 2 * BOUND, "the late ones waiting")
    writer.open()
    for queued in first + [await task for task in late]:
        await asyncio.wait_for(queued, DEADLINE)
    commits.close()
    assert writer.ran == list(range(total))


async def test_an_appender_cancelled_while_waiting_for_room_runs_nothing(
    writer: Writer,
) -> None:
    commits, _ = committer(writer)
    first = await filled(commits, writer)
    cancelled = asyncio.create_task(commits.submit_async(job("cancelled")))
    kept = asyncio.create_task(commits.submit_async(job("kept")))
    await until(lambda: commits.statistics()["waiting"] == 2, "both waiting for room")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert commits.statistics()["waiting"] == 1
    writer.open()
    assert await asyncio.wait_for(await kept, DEADLINE) == "kept"
    for queued in first:
        await asyncio.wait_for(queued, DEADLINE)
    commits.close()
    assert writer.ran == [*range(len(first)), "kept"]


def test_closing_finishes_the_appenders_waiting_for_room_and_refuses_new_ones(
    writer: Writer,
) -> None:
    commits, _ = committer(writer)
    queued = [commits.submit(job(0))]
    assert writer.holding.wait(DEADLINE), "the writer never started"
    while commits.statistics()["queued"] < BOUND:
        queued.append(commits.submit(job(len(queued))))
    waiting: list[concurrent.futures.Future[Any]] = []
    blocked = threading.Thread(target=lambda: waiting.append(commits.submit(job("waited"))))
    blocked.start()
    until_sync(lambda: commits.statistics()["waiting"] == 1, "the appender waiting for room")
    closer = threading.Thread(target=commits.close)
    closer.start()
    until_sync(lambda: commits._closing, "close() begun")
    with pytest.raises(StoreClosed):
        commits.submit(job("too late"))
    writer.open()
    closer.join(DEADLINE)
    blocked.join(DEADLINE)
    everything = [*range(len(queued)), "waited"]
    assert [future.result(DEADLINE) for future in queued + waiting] == everything
    assert writer.ran == everything


@pytest.mark.parametrize("bound", [0, -1, True, 2.5, "8"])
def test_a_bound_that_is_not_a_positive_integer_is_refused_by_name(
    bound: object, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"max_queued must be an integer of at least 1"):
        GroupCommitter(Writer().run_batch, lambda: None, max_queued=bound)  # type: ignore[arg-type]
    path = tmp_path / "shop.db"
    with pytest.raises(ValueError, match=r"max_queued_writes must be an integer"):
        SqliteEventStore(path, max_queued_writes=bound)  # type: ignore[arg-type]
    assert not path.exists()  # refused before anything was written


def test_the_store_has_a_bounded_writer_by_default(tmp_path: Path) -> None:
    default = SqliteEventStore(tmp_path / "shop.db", durability="off")
    with default:
        assert default._committer._max_queued == DEFAULT_MAX_QUEUED == 16_384
    chosen = SqliteEventStore(tmp_path / "other.db", durability="off", max_queued_writes=7)
    with chosen:
        assert chosen._committer._max_queued == 7


class Interrupted(Exception):
    """What the test's signal handler raises in a blocked appender."""


def test_an_appender_interrupted_while_blocked_for_room_runs_nothing(writer: Writer) -> None:
    commits, _ = committer(writer)
    queued = [commits.submit(job(0))]
    assert writer.holding.wait(DEADLINE), "the writer never started"
    while commits.statistics()["queued"] < BOUND:
        queued.append(commits.submit(job(len(queued))))

    def interrupt(signum: int, frame: object) -> None:
        if commits.statistics()["waiting"] == 1:  # blocked in submit: interrupt it there
            raise Interrupted
        signal.setitimer(signal.ITIMER_REAL, 0.01)  # not yet blocked: look again

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with pytest.raises(Interrupted):
            commits.submit(job("interrupted"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert commits.statistics()["waiting"] == 0
    writer.open()
    commits.close()
    assert [future.result(DEADLINE) for future in queued] == list(range(len(queued)))
    assert writer.ran == list(range(len(queued)))  # the interrupted job never ran
