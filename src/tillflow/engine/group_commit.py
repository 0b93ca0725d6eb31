"""Group commit: one writer thread runs every queued write job of a store in shared
transactions, so concurrent appenders that arrive together pay for one commit (one fsync)
between them, while each still gets its own result or its own error.

The backend supplies ``run_batch(jobs) -> outcomes``: it opens a transaction, runs each
job in isolation and commits. This module only queues, hands out futures and owns the
thread. Results for asyncio callers are delivered with one call into each event loop per
group, not one per job (each cross-thread call costs a system call).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tillflow.engine.errors import StoreClosed

Job = Callable[[Any], Any]


class Failed:
    """The outcome of a job that raised: the exception, to be re-raised in its caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


BatchRunner = Callable[[Sequence[Job]], list[Any]]
"""Runs jobs in one transaction; returns, per job, its result or a :class:`Failed`.
If it raises, every job of the batch fails with that error."""

_Waiter = concurrent.futures.Future[Any] | asyncio.Future[Any]


class GroupCommitter:
    """A queue of write jobs and the one thread that commits them in groups.

    :meth:`submit` is thread-safe and returns a ``concurrent.futures.Future``;
    :meth:`submit_async` returns an ``asyncio.Future`` of the running loop. At most
    ``max_jobs`` jobs share a transaction.
    """

    def __init__(
        self,
        run_batch: BatchRunner,
        on_committed: Callable[[], None],
        name: str = "tillflow-writer",
        max_jobs: int = 4096,
        after_delivery: Callable[[], None] | None = None,
    ) -> None:
        """``after_delivery``: housekeeping run once the callers of a group have their
        results, before the next group starts (e.g. a WAL checkpoint)."""
        self._run_batch = run_batch
        self._on_committed = on_committed
        self._after_delivery = after_delivery
        self._max_jobs = max_jobs
        self._queue: deque[tuple[Job, _Waiter]] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._batches = 0
        self._jobs = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> concurrent.futures.Future[Any]:
        """Queue ``job``; its future resolves once the transaction holding it committed."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._enqueue(job, future)
        return future

    def submit_async(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job`` from a coroutine; await the returned future."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(job, future)
        return future

    def _enqueue(self, job: Job, waiter: _Waiter) -> None:
        with self._ready:
            if self._closing:
                raise StoreClosed
            self._queue.append((job, waiter))
            self._ready.notify()

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
            committed = True
            try:
                outcomes = self._run_batch([job for job, _ in batch])
            except BaseException as error:  # delivered to every caller of the batch
                outcomes = [Failed(error)] * len(batch)
                committed = False
            if committed:
                self._batches += 1
                self._jobs += len(batch)
            self._deliver(batch, outcomes)
            if committed:
                self._on_committed()
                if self._after_delivery is not None:
                    self._after_delivery()

    @staticmethod
    def _deliver(batch: list[tuple[Job, _Waiter]], outcomes: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, waiter), outcome in zip(batch, outcomes, strict=True):
            if isinstance(waiter, asyncio.Future):
                by_loop.setdefault(waiter.get_loop(), []).append((waiter, outcome))
            elif isinstance(outcome, Failed):
                waiter.set_exception(outcome.error)
            else:
                waiter.set_result(outcome)
        for loop, resolved in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, resolved)


def _resolve(resolved: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in resolved:
        if future.done():  # the caller was cancelled
            continue
        if isinstance(outcome, Failed):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)
