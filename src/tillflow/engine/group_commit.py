"""Group commit: one writer thread runs every queued write job of a store in shared
transactions, so concurrent appenders that arrive together pay for one commit (one fsync)
between them, while each still gets its own result or its own error.

The backend supplies ``run_batch(jobs) -> outcomes``: it opens a transaction, runs each
job in isolation (a savepoint each) and commits. This module only queues, hands out
futures and owns the thread.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from tillflow.engine.errors import StoreClosed

Txn = TypeVar("Txn")
Job = Callable[[Any], Any]


class Failed:
    """The outcome of a job that raised: the exception, to be re-raised in its caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


BatchRunner = Callable[[Sequence[Job]], list[Any]]
"""Runs jobs in one transaction; returns, per job, its result or a :class:`Failed`.
If it raises, every job of the batch fails with that error."""


class GroupCommitter(Generic[Txn]):
    """A queue of write jobs and the one thread that commits them in groups.

    :meth:`submit` is thread-safe and returns a ``concurrent.futures.Future``; await it from
    asyncio with ``asyncio.wrap_future``. At most ``max_jobs`` jobs share a transaction.
    """

    def __init__(
        self,
        run_batch: BatchRunner,
        on_committed: Callable[[], None],
        name: str = "tillflow-writer",
        max_jobs: int = 2048,
    ) -> None:
        self._run_batch = run_batch
        self._on_committed = on_committed
        self._max_jobs = max_jobs
        self._queue: deque[tuple[Job, concurrent.futures.Future[Any]]] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._batches = 0
        self._jobs = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> concurrent.futures.Future[Any]:
        """Queue ``job``; its future resolves once the transaction holding it committed."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._ready:
            if self._closing:
                raise StoreClosed
            self._queue.append((job, future))
            self._ready.notify()
        return future

    def run(self, job: Job) -> Any:
        """Submit ``job`` and block until it committed; re-raise its error."""
        return self.submit(job).result()

    def statistics(self) -> dict[str, int]:
        """Transactions committed, jobs run, jobs waiting."""
        return {"batches": self._batches, "jobs": self._jobs, "queued": len(self._queue)}

    def close(self) -> None:
        """Finish every queued job, then stop the thread. Idempotent."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                count = min(len(self._queue), self._max_jobs)
                batch = [self._queue.popleft() for _ in range(count)]
            jobs = [job for job, _ in batch]
            committed = True
            try:
                outcomes = self._run_batch(jobs)
            except BaseException as error:  # delivered to every caller of the batch
                outcomes = [Failed(error)] * len(batch)
                committed = False
            if committed:
                self._batches += 1
                self._jobs += len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Failed):
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome)
            if committed:
                self._on_committed()
