"""Group commit: one writer thread runs every queued write job of a store in shared
transactions, so concurrent appenders that arrive together pay for one commit (one fsync)
between them, while each still gets its own result or its own error.

The backend supplies ``run_batch(jobs) -> outcomes``: it opens a transaction, runs each
job in isolation and commits. This module only queues, hands out futures and owns the
thread. Results for asyncio callers are delivered with one call into each event loop per
group, not one per job (each cross-thread call costs a system call).

The queue is bounded (backpressure): once ``max_queued`` jobs wait for the writer, an
appender waits for room — a thread blocks, a coroutine awaits — and appenders get room in
the order they arrived, so a flood of appenders holds the queue at its bound instead of
growing it without limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from tillflow.engine.errors import StoreClosed

Job = Callable[[Any], Any]

DEFAULT_MAX_QUEUED: Final = 16_384
"""Jobs that may wait for the writer by default: four full transactions of 4,096."""


class Failed:
    """The outcome of a job that raised: the exception, to be re-raised in its caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


BatchRunner = Callable[[Sequence[Job]], list[Any]]
"""Runs jobs in one transaction; returns, per job, its result or a :class:`Failed`.
If it raises, every job of the batch fails with that error."""

_Waiter = concurrent.futures.Future[Any] | asyncio.Future[Any]


def require_count(setting: str, value: object) -> None:
    """Raise ``ValueError`` naming ``setting`` unless ``value`` is an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{setting} must be an integer of at least 1: {value!r}")


class _Entry:
    """An appender waiting for room: its job, the future of its result, and how to wake
    it (``None``: a thread, woken through the room condition)."""

    __slots__ = ("admitted", "job", "waiter", "wake")

    def __init__(self, job: Job, waiter: _Waiter, wake: asyncio.Future[None] | None) -> None:
        self.job = job
        self.waiter = waiter
        self.wake = wake
        self.admitted = False


class GroupCommitter:
    """A queue of write jobs and the one thread that commits them in groups.

    :meth:`submit` is thread-safe and returns a ``concurrent.futures.Future``;
    :meth:`submit_async` returns an ``asyncio.Future`` of the running loop. Both wait
    while ``max_queued`` jobs are queued; then each job runs exactly once. At most
    ``max_jobs`` jobs share a transaction.
    """

    def __init__(
        self,
        run_batch: BatchRunner,
        on_committed: Callable[[], None],
        name: str = "tillflow-writer",
        max_jobs: int = 4096,
        after_delivery: Callable[[], None] | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
        caller_runs: bool = False,
    ) -> None:
        """``after_delivery``: housekeeping run once the callers of a group have their
        results, before the next group starts (e.g. a WAL checkpoint). ``max_queued``: the
        queue's bound (≥ 1; :data:`DEFAULT_MAX_QUEUED`); ``ValueError`` otherwise.
        ``caller_runs``: a thread that submits while nothing is queued or running runs its
        job itself, as a group of one, instead of handing it to the writer thread and
        waiting (two thread switches saved); only for a ``run_batch`` any thread may call."""
        require_count("max_jobs", max_jobs)
        require_count("max_queued", max_queued)
        self._run_batch = run_batch
        self._on_committed = on_committed
        self._after_delivery = after_delivery
        self._max_jobs = max_jobs
        self._max_queued = max_queued
        self._queue: deque[tuple[Job, _Waiter]] = deque()
        self._waiting: deque[_Entry] = deque()
        """Appenders waiting for room, oldest first; only ever non-empty while the queue
        is full (each group the writer takes makes room for the oldest at once)."""
        lock = threading.Lock()
        self._ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._closing = False
        self._caller_runs = caller_runs
        self._busy = False
        """A group is running (in the writer thread or a caller's): one at a time."""
        self._batches = 0
        self._jobs = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> concurrent.futures.Future[Any]:
        """Queue ``job``, blocking while the queue is full; the future resolves once the
        transaction holding it committed. Raises :class:`StoreClosed` after :meth:`close`.
        Interrupted while blocked (e.g. ``KeyboardInterrupt``), the job is not run."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._room:
            if self._caller_runs and self._idle():
                self._busy = True
            elif self._try_enqueue(job, future):
                return future
            else:
                entry = _Entry(job, future, None)
                self._waiting.append(entry)
                try:
                    while not entry.admitted:
                        self._room.wait()
                except BaseException:
                    if not entry.admitted:  # wait() holds the lock again, also when raising
                        self._waiting.remove(entry)
                    raise
                return future
        try:
            self._run_group([(job, future)])
        finally:
            with self._ready:
                self._busy = False
                self._ready.notify()  # the writer waits while a caller runs
        return future

    def _idle(self) -> bool:
        """Nothing queued, waiting or running, and not closing; call with the lock held."""
        if self._closing:
            raise StoreClosed
        return not (self._busy or self._queue or self._waiting)

    async def submit_async(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job`` from a coroutine, awaiting room while the queue is full; await the
        returned future for the result. Raises :class:`StoreClosed` after :meth:`close`.
        Cancelled while awaiting room, the job is not run; once queued, it runs."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._room:
            if self._try_enqueue(job, future):
                return future
            wake: asyncio.Future[None] = loop.create_future()
            entry = _Entry(job, future, wake)
            self._waiting.append(entry)
        try:
            await wake
        except asyncio.CancelledError:
            with self._room:
                if not entry.admitted:
                    self._waiting.remove(entry)
            future.cancel()  # nobody will read it: its outcome is dropped
            raise
        return future

    def _try_enqueue(self, job: Job, waiter: _Waiter) -> bool:
        """Queue ``job`` if there is room; call with the lock held. (Appenders only wait
        while the queue is full, so one that finds room overtakes nobody.)"""
        if self._closing:
            raise StoreClosed
        if len(self._queue) >= self._max_queued:
            return False
        self._queue.append((job, waiter))
        self._ready.notify()
        return True

    def _admit(self) -> list[asyncio.Future[None]]:
        """Move the oldest waiting appenders into the room there is; call with the lock
        held. Threads are woken here; the coroutines' wake futures are returned, to be
        resolved in their loops once the lock is released."""
        woken: list[asyncio.Future[None]] = []
        threads = False
        while self._waiting and len(self._queue) < self._max_queued:
            entry = self._waiting.popleft()
            entry.admitted = True
            self._queue.append((entry.job, entry.waiter))
            if entry.wake is None:
                threads = True
            else:
                woken.append(entry.wake)
        if threads:
            self._room.notify_all()
        return woken

    def statistics(self) -> dict[str, int]:
        """Transactions committed, jobs run, jobs queued, appenders waiting for room."""
        return {
            "batches": self._batches,
            "jobs": self._jobs,
            "queued": len(self._queue),
            "waiting": len(self._waiting),
        }

    def close(self) -> None:
        """Refuse new jobs (:class:`StoreClosed`); finish every queued job and every job
        waiting for room, then stop the thread. Idempotent."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._ready:
                while self._busy or not (self._queue or self._closing):
                    self._ready.wait()
                if not self._queue:
                    return
                count = min(len(self._queue), self._max_jobs)
                batch = [self._queue.popleft() for _ in range(count)]
                woken = self._admit() if self._waiting else []
                self._busy = True
            if woken:
                _wake(woken)
            try:
                self._run_group(batch)
            finally:
                with self._ready:
                    self._busy = False

    def _run_group(self, batch: list[tuple[Job, _Waiter]]) -> None:
        """Run ``batch`` as one transaction, give each caller its outcome, then the hooks."""
        committed = True
        try:
            outcomes = self._run_batch([job for job, _ in batch])
        except BaseException as error:  # delivered to every caller of the batch
            outcomes = [Failed(error)] * len(batch)
            committed = False
        if committed:
            with self._ready:
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


def _wake(woken: list[asyncio.Future[None]]) -> None:
    """Tell the coroutines among the appenders just given room, one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for wake in woken:
        by_loop.setdefault(wake.get_loop(), []).append(wake)
    for loop, wakes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_set_all, wakes)


def _set_all(wakes: list[asyncio.Future[None]]) -> None:
    for wake in wakes:
        if not wake.done():  # else the appender was cancelled after it was given room
            wake.set_result(None)


def _resolve(resolved: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in resolved:
        if future.done():  # the caller was cancelled
            continue
        if isinstance(outcome, Failed):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)
