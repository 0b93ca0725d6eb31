"""The asyncio runtime: runs a declared set of processors concurrently over one store.

::

    async with Runtime(store, [inventory, reporting]) as runtime:
        receipt = await runtime.append("checkout-1", [NewEvent("CheckedOut", {...})])
        outcome = await runtime.wait_for(receipt, ["reporting"], timeout=2.0)
        await runtime.drain()

Each (processor, lane) is a task; its batches run in a thread of the processor's own (so a
batch never blocks the event loop and one processor's connection stays in one thread).
Tasks wake on every commit made through the store object (an in-process signal) and
otherwise poll with backoff, which is how they see writes from other processes. While the
store is unavailable, tasks retry with :class:`OutageBackoff` and the runtime is
``degraded`` (:attr:`Runtime.health`); they resume by themselves when it is back.
Nothing starts before ``__aenter__``; ``__aexit__`` lets running batches finish and leaves
no task or thread behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Literal

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    DrainTimeout,
    HandlerFailed,
    ProcessorStopped,
    StoreUnavailable,
    UnknownProcessor,
)
from tillflow.engine.failure import FailurePolicy, StopOnFailure
from tillflow.engine.graph import validate_graph
from tillflow.engine.lane_processor import LaneProcessor, State, turn_takers
from tillflow.engine.lingering import Lingering, linger
from tillflow.engine.outage import OutageBackoff, StoreHealth, describe_error
from tillflow.engine.parked_lane import attach_parking
from tillflow.engine.processor import Processor
from tillflow.engine.stalls import DEFAULT_STALL_AFTER
from tillflow.engine.statistics import ProcessorStatistics, offline_snapshot, snapshot
from tillflow.engine.store import EventStore
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt
from tillflow.engine.versions import live_name

log = logging.getLogger("tillflow.runtime")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a thread without a loop
        return None


REQUESTS: Final = "requests"
"""Who fails in :attr:`Runtime.health` while the callers' requests meet the store away."""


@dataclass(frozen=True)
class WaitOutcome:
    """How a :meth:`Runtime.wait_for` ended.

    ``status``: ``reached`` (every named processor passed the receipt), ``timed_out``, or
    ``failed`` (a named processor, or one it depends on, has stopped: waiting longer cannot
    help). ``behind``: per processor, how many positions it still was short of the receipt.
    ``failures``: per stopped processor, its error.
    """

    status: Literal["reached", "timed_out", "failed"]
    behind: dict[str, int]
    elapsed: float
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        return self.status == "reached"

    def __bool__(self) -> bool:
        return self.reached


@dataclass
class _Streak:
    """One lane's failed steps in a row, by kind."""

    conflicts: int = 0
    unavailable: int = 0


@dataclass(frozen=True)
class PollBackoff:
    """How an idle processor polls for writes it was not told about (other processes)."""

    first: float = 0.002
    factor: float = 2.0
    most: float = 0.25


class Runtime:
    """Runs ``processors`` over ``store`` until the ``async with`` block ends."""

    def __init__(
        self,
        store: EventStore,
        processors: Sequence[Processor],
        failure_policy: FailurePolicy | None = None,
        poll: PollBackoff | None = None,
        run: Collection[str] | None = None,
        outage: OutageBackoff | None = None,
        stall_after: float = DEFAULT_STALL_AFTER,
    ) -> None:
        """``processors``: the whole declared graph. ``run``: the names this runtime runs
        (default: all); the others run elsewhere (another process or machine) and count for
        barriers, waits and drains through their durable checkpoints. ``outage``: how
        lanes retry while the store is unavailable. ``stall_after``: seconds behind without
        progress before :meth:`statistics` calls a lane ``stalled``."""
        self.store = store
        self.processors = {declared.name: declared for declared in processors}
        self.order = validate_graph(list(processors), store.registry)
        self.running = set(self.order if run is None else self._check_names(run))
        self.failure_policy: FailurePolicy = failure_policy or StopOnFailure()
        self.poll = poll or PollBackoff()
        self.outage = outage or store.outage_backoff or OutageBackoff()
        self.stall_after = stall_after
        self.started_at: float | None = None
        """When :meth:`start` ran (Unix time): no lane run here is stalled before it has run
        for ``stall_after`` seconds."""
        self.health = StoreHealth(on_back=self._wake_all)
        """Whether the store answers this runtime's lanes (and its lease keeper, if any)."""
        self.lanes: dict[str, list[LaneProcessor]] = {  # in turn, in the processor's thread
            name: turn_takers(store, self.processors[name]) for name in self.order
        }
        attach_parking(self.lanes, self.processors)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._wake: list[tuple[LaneProcessor, asyncio.Event]] = []
        self._lingering = Lingering()
        self._progress: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._probe: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start a task per processor and lane."""
        if self._tasks:
            raise RuntimeError("runtime already started")
        self._loop = asyncio.get_running_loop()
        self.started_at = time.time()
        self._progress = asyncio.Condition()
        self._stopping = False
        remove = self.store.add_commit_listener(self._on_commit)
        self._remove_listener = remove
        for name in self.order:
            if name not in self.running:
                for lane_processor in self.lanes[name]:
                    lane_processor.state = State.ELSEWHERE
                continue
            self._executors[name] = ThreadPoolExecutor(1, thread_name_prefix=f"tillflow:{name}")
            for lane_processor in self.lanes[name]:
                wake = asyncio.Event()
                self._wake.append((lane_processor, wake))
                self._tasks.append(
                    asyncio.create_task(
                        self._run(lane_processor, wake),
                        name=f"tillflow:{name}:{lane_processor.lane}",
                    )
                )

    async def stop(self) -> None:
        """Let running batches finish, stop every task, release threads. Idempotent.

        Cancelled meanwhile, it still stops: no batch starts any more, a batch under way
        ends in its thread, which then goes; and ``CancelledError`` is raised."""
        self._stopping = True
        if self._probe is not None:
            self._probe.cancel()  # a probe under way ends in its thread
        self.wake()
        self._lingering.hurry_all()
        try:
            if self._tasks:  # shielded: a cancelled stop leaves the tasks to end themselves
                await asyncio.shield(asyncio.gather(*self._tasks, return_exceptions=True))
        except asyncio.CancelledError:
            self._release(wait=False)
            raise
        self._release(wait=True)

    def _release(self, wait: bool) -> None:
        """Let go of the threads (``wait``: for them to end) and the commit listener."""
        self._tasks.clear()
        self._wake.clear()
        self._lingering.clear()
        for executor in self._executors.values():
            executor.shutdown(wait=wait)
        self._executors.clear()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        for lanes in self.lanes.values():
            for lane_processor in lanes:
                if lane_processor.state not in (State.FAILED, State.ELSEWHERE):
                    lane_processor.state = State.STOPPED

    def _on_commit(self) -> None:
        """Called from the writing thread after each commit."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._committed)

    def _committed(self) -> None:
        self.health.recovered(REQUESTS)  # the store takes writes again (if it did not)
        self._wake_all()

    def request_refused(self, error: StoreUnavailable) -> None:
        """A request (an append, a read) met the store unavailable: :attr:`health` is
        degraded from now until a commit, or a probe of the store
        (:meth:`EventStore.probe_writes`, retried with the outage backoff), finds it back.
        Callable from any thread; a runtime not started ignores it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:  # said before the caller's next request
            self._refused(error)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._refused, error)

    def _refused(self, error: StoreUnavailable) -> None:
        self.health.failed(REQUESTS, error)
        if not self._stopping and (self._probe is None or self._probe.done()):
            self._probe = asyncio.create_task(self._probe_until_back(), name="tillflow:probe")

    async def _probe_until_back(self) -> None:
        retries = 0
        while self.health.failing(REQUESTS) and not self._stopping:
            await self._sleep_unless_stopping(self.outage.delay(retries))
            retries += 1
            try:
                await asyncio.to_thread(self.store.probe_writes)
            except StoreUnavailable:
                continue
            self.health.recovered(REQUESTS)

    def _wake_all(self) -> None:
        """After a commit (or the store back): the lanes held here look again now (those
        another worker holds wait for their poll, or for :meth:`wake`)."""
        for lane_processor, wake in self._wake:
            if lane_processor.leased:
                wake.set()

    def wake(self) -> None:
        """Have every lane look again now, not after its poll interval: e.g. lanes a lease
        keeper has just granted. Call it from the event loop's thread."""
        for _, wake in self._wake:
            wake.set()

    async def _notify_progress(self) -> None:
        assert self._progress is not None
        async with self._progress:
            self._progress.notify_all()

    # -- the processor loop ----------------------------------------------------------------

    async def _run(self, lane_processor: LaneProcessor, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executors[lane_processor.name]
        delay = self.poll.first
        streak = _Streak()
        lingers = lane_processor.processor.linger
        hurry = self._lingering.lane(lane_processor.name) if lingers else None
        started = -math.inf
        while not self._stopping:
            wake.clear()
            if await self._elsewhere(lane_processor, wake):
                self._reachable(lane_processor, streak)  # no longer this runtime's to wait for
                continue
            if hurry is not None:
                await linger(hurry, started + lingers - loop.time())
                if self._stopping:
                    break
                started = loop.time()
            try:
                result = await loop.run_in_executor(executor, lane_processor.step)
                if streak.unavailable and not result.progressed:
                    # a step that wrote nothing proves reads only: back once writes are
                    await loop.run_in_executor(executor, self.store.probe_writes)
            except Exception as error:
                if not await self._after_failure(lane_processor, error, streak, wake):
                    return
                continue
            streak.conflicts = 0
            self._reachable(lane_processor, streak)
            if lane_processor.state is not State.FAILED and lane_processor.failed_event is None:
                lane_processor.error = None
            if result.progressed:
                delay = self.poll.first
                await self._notify_progress()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
            delay = min(delay * self.poll.factor, self.poll.most)

    def _reachable(self, lane_processor: LaneProcessor, streak: _Streak) -> None:
        if streak.unavailable:
            streak.unavailable = 0
            self.health.recovered(lane_processor)

    async def _after_failure(
        self,
        lane_processor: LaneProcessor,
        error: Exception,
        streak: _Streak,
        wake: asyncio.Event,
    ) -> bool:
        """Wait as a failed step calls for; ``False``: the processor stops (failed). An
        outage's backoff ends early when another lane (or the lease keeper) finds the store
        back, or on a commit."""
        if isinstance(error, StoreUnavailable):
            # not the handler's fault: no attempt counted, the checkpoint unmoved
            lane_processor.state = State.DEGRADED
            lane_processor.error = error
            self.health.failed(lane_processor, error)
            log.debug("processor %s: %s", lane_processor.name, describe_error(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.outage.delay(streak.unavailable)):
                    await wake.wait()
            streak.unavailable += 1
        elif isinstance(error, HandlerFailed):
            await self._notify_progress()
            parking = lane_processor.processor.parking
            if parking is None:
                retry_after = self.failure_policy.retry_after(error, lane_processor.attempts)
            else:
                retry_after = parking.retry_after(lane_processor.attempts)
                if retry_after is None:
                    log.error("%s; parked", error)
                    executor = self._executors[lane_processor.name]
                    with contextlib.suppress(Exception):  # the next step fails it again
                        await asyncio.get_running_loop().run_in_executor(
                            executor, lane_processor.park
                        )
                    return True
            if retry_after is None:
                lane_processor.state = State.FAILED
                log.error("%s", error)
                await self._notify_progress()
                return False
            lane_processor.state = State.RETRYING
            log.warning("%s; retrying in %.3fs", error, retry_after)
            await self._sleep_unless_stopping(retry_after)
            lane_processor.clear_failure()
        elif isinstance(error, ConcurrencyConflict):
            # a command wrote to a stream this batch also wrote: nothing was committed;
            # redo the batch against the new state at once, backing off if it persists
            streak.conflicts += 1
            lane_processor.contended()
            log.info("processor %s: %s; redoing the batch", lane_processor.name, error)
            await self._sleep_unless_stopping(
                0 if streak.conflicts < 3 else self.poll.first * streak.conflicts
            )
        elif isinstance(error, CheckpointConflict):
            log.warning("%s", error)
            await self._sleep_unless_stopping(self.poll.most)
        else:  # something else went wrong in the store: keep trying, visibly
            lane_processor.failures += 1
            lane_processor.error = error
            lane_processor.state = State.RETRYING
            log.error("processor %s: batch failed, retrying", lane_processor.name, exc_info=error)
            await self._sleep_unless_stopping(self.poll.most)
        return True

    async def _elsewhere(self, lane_processor: LaneProcessor, wake: asyncio.Event) -> bool:
        """Whether another worker holds this lane for now (see ``LeaseKeeper``); if so,
        wait a poll interval (or a wake-up) first."""
        if lane_processor.leased:
            return False
        lane_processor.state = State.ELSEWHERE
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll.most):
                await wake.wait()
        return True

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    # -- writing and waiting ---------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        """Append through the store without blocking the loop (see ``EventStore.append``)."""
        return await self.store.append_async(stream, events, expected_version)

    def _check_names(self, names: Iterable[str]) -> list[str]:
        checked = list(names)
        for name in checked:
            if name not in self.processors:
                raise UnknownProcessor(name)
        return checked

    def _stored_name(self, name: str) -> str:
        """The name ``name``'s checkpoints are kept under now: for a rebuildable projection,
        its live version's (one read of the live pointer), else ``name``."""
        return live_name(self.store, name) if self.lanes[name][0].follows_live else name

    def _upstream_closure(self, names: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.processors[name].after)
        return seen

    def _failures(self, names: Iterable[str]) -> dict[str, str]:
        failures: dict[str, str] = {}
        for name in self._upstream_closure(names):
            for lane_processor in self.lanes[name]:
                if lane_processor.state is State.FAILED:
                    failures[name] = (
                        f"{type(lane_processor.error).__name__}: {lane_processor.error}"
                    )
        return failures

    async def wait_for(
        self, receipt: Receipt, processors: Iterable[str] | None = None, timeout: float = 5.0
    ) -> WaitOutcome:
        """Wait until every processor named (default: all) has passed ``receipt`` on every
        lane it names, for at most ``timeout`` seconds; never raises for lateness.

        Returns at once with status ``failed`` if a named processor, or one upstream of it,
        has stopped. Checkpoints are read from the store, so processors running in other
        processes count too. Processors that ignore the receipt's event types pass it as
        they scan, so the wait cannot hang on them. Cancelling the wait raises
        ``CancelledError`` at once, whatever the processors are doing.
        """
        names = self._check_names(self.processors if processors is None else processors)
        upstream = self._upstream_closure(names)
        started = time.monotonic()
        deadline = started + max(timeout, 0.0)
        delay = self.poll.first
        while True:
            self._lingering.hurry(upstream)  # each time: a backlog takes batches
            behind: dict[str, int] = {}
            for name in names:
                stored = self._stored_name(name)
                for lane, position in receipt.positions.items():
                    shortfall = position - self.store.checkpoint(stored, lane)
                    if shortfall > 0:
                        behind[name] = behind.get(name, 0) + shortfall
            elapsed = time.monotonic() - started
            if not behind:
                return WaitOutcome("reached", {}, elapsed)
            failures = self._failures(names)
            if failures:
                return WaitOutcome("failed", behind, elapsed, failures)
            left = deadline - time.monotonic()
            if left <= 0:
                return WaitOutcome("timed_out", behind, elapsed)
            await self._wait_progress(min(left, delay))
            delay = min(delay * self.poll.factor, self.poll.most)

    async def _wait_progress(self, seconds: float) -> None:
        """Wait at most ``seconds`` for a processor to report progress. A cancellation is
        never lost: ``asyncio.timeout``, not ``asyncio.wait_for``, which on Python 3.11
        returns normally when cancelled in the turn that progress is reported."""
        if self._progress is None:
            await asyncio.sleep(seconds)
            return
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._progress.wait()

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every processor has scanned everything on every lane, including the
        events processors emitted meanwhile. Raises :class:`ProcessorStopped` if one has
        failed, :class:`DrainTimeout` (saying who is behind by how much) after ``timeout``;
        cancelling it raises ``CancelledError`` at once.
        """
        deadline = time.monotonic() + timeout
        delay = self.poll.first
        while True:
            self._lingering.hurry_all()
            heads = self.store.heads()
            behind: dict[str, int] = {}
            for name, lanes in self.lanes.items():
                stored = self._stored_name(name)
                for lane_processor in lanes:
                    shortfall = heads[lane_processor.lane] - self.store.checkpoint(
                        stored, lane_processor.lane
                    )
                    if shortfall > 0:
                        behind[name] = behind.get(name, 0) + shortfall
            if not behind and self.store.heads() == heads:
                return
            for name, lanes in self.lanes.items():
                for lane_processor in lanes:
                    if lane_processor.state is State.FAILED:
                        raise ProcessorStopped(name, lane_processor.error)
            if self.running and not self._tasks:
                raise ProcessorStopped(next(iter(behind)), None)
            if time.monotonic() >= deadline:
                raise DrainTimeout(timeout, behind)
            await self._wait_progress(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * self.poll.factor, self.poll.most)

    # -- observing -------------------------------------------------------------------------

    def statistics(self) -> list[ProcessorStatistics]:
        """A snapshot of every processor on every lane, in dependency order (``stalled``
        after :attr:`stall_after` seconds behind without progress). While the store is
        unavailable, the figures last seen (never waiting on the store)."""
        rows: list[ProcessorStatistics] = []
        reachable = not self.health.degraded
        since = self.started_at
        for name in self.order:
            for lane_processor in self.lanes[name]:
                if reachable:
                    try:
                        rows.append(snapshot(lane_processor, self.stall_after, running_since=since))
                        continue
                    except StoreUnavailable:
                        reachable = False
                rows.append(offline_snapshot(lane_processor))
        return rows
