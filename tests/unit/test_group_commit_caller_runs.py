"""``caller_runs``: a thread that submits to an idle group committer runs its job itself
(no hand-over to the writer thread), yet groups still run one at a time, jobs queued
meanwhile still share the writer's next group, and closing waits for a caller's group."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from tillflow.engine import StoreClosed
from tillflow.engine.group_commit import GroupCommitter, Job

DEADLINE = 30.0
"""Generous: how long any awaited condition may take on a busy machine."""


class Writer:
    """A ``run_batch`` that records which thread ran each group and fails the test if two
    groups ever overlap."""

    def __init__(self) -> None:
        self.running = threading.Lock()
        self.overlaps = 0
        self.groups: list[tuple[str, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        if not self.running.acquire(blocking=False):
            self.overlaps += 1
            self.running.acquire()
        try:
            self.entered.set()
            assert self.gate.wait(DEADLINE), "the test never opened the gate"
            self.groups.append((threading.current_thread().name, len(jobs)))
            return [job(None) for job in jobs]
        finally:
            self.running.release()


def returning(value: int) -> Job:
    """A job whose result is ``value``."""
    return lambda _: value


def committer(writer: Writer, caller_runs: bool = True) -> GroupCommitter:
    return GroupCommitter(writer.run_batch, lambda: None, name="writer", caller_runs=caller_runs)


def test_an_idle_committer_runs_the_job_in_the_callers_thread() -> None:
    writer = Writer()
    group_commit = committer(writer)
    try:
        assert group_commit.submit(lambda _: "done").result(timeout=DEADLINE) == "done"
        assert writer.groups == [(threading.current_thread().name, 1)]
        assert group_commit.statistics()["batches"] == 1
    finally:
        group_commit.close()


def test_without_caller_runs_the_writer_thread_runs_it() -> None:
    writer = Writer()
    group_commit = committer(writer, caller_runs=False)
    try:
        group_commit.submit(lambda _: None).result(timeout=DEADLINE)
        assert writer.groups == [("writer", 1)]
    finally:
        group_commit.close()


def test_jobs_queued_while_a_caller_runs_share_the_writers_next_group() -> None:
    writer = Writer()
    group_commit = committer(writer)
    writer.gate.clear()
    first = threading.Thread(target=lambda: group_commit.submit(lambda _: 0), name="first")
    first.start()
    try:
        assert writer.entered.wait(DEADLINE)
        queued = [group_commit.submit(returning(n)) for n in range(1, 6)]
        writer.gate.set()
        assert [future.result(timeout=DEADLINE) for future in queued] == [1, 2, 3, 4, 5]
        first.join(DEADLINE)
        assert writer.groups == [("first", 1), ("writer", 5)]
    finally:
        writer.gate.set()
        group_commit.close()


def test_groups_never_overlap_under_many_callers() -> None:
    writer = Writer()
    group_commit = committer(writer)
    results: list[int] = []
    lock = threading.Lock()

    def call(base: int) -> None:
        for n in range(200):
            outcome = group_commit.submit(returning(base + n)).result(timeout=DEADLINE)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=call, args=(1000 * t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    group_commit.close()
    assert writer.overlaps == 0
    assert sorted(results) == sorted(1000 * t + n for t in range(8) for n in range(200))
    assert sum(size for _, size in writer.groups) == 1600
    callers = {name for name, _ in writer.groups} - {"writer"}
    assert callers, "no caller ever ran its own job"


def test_close_waits_for_a_callers_group_and_then_refuses() -> None:
    writer = Writer()
    group_commit = committer(writer)
    writer.gate.clear()
    outcome: list[object] = []
    caller = threading.Thread(target=lambda: outcome.append(group_commit.submit(lambda _: 7)))
    caller.start()
    assert writer.entered.wait(DEADLINE)
    order: list[str] = []

    def close() -> None:
        group_commit.close()
        order.append("closed")

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(0.2)  # a close that does not wait returns within this on any machine
    order.append("opened")
    writer.gate.set()
    closer.join(DEADLINE)
    caller.join(DEADLINE)
    assert order == ["opened", "closed"], "close returned while a caller's group was running"
    assert [future.result() for future in outcome] == [7]  # type: ignore[attr-defined]
    with pytest.raises(StoreClosed):
        group_commit.submit(lambda _: None)
