"""Cancelling a read-your-writes wait or a drain ends it at once with ``CancelledError`` —
also when a processor reports progress in the same turn of the loop (Python 3.11's
``asyncio.wait_for`` returns normally then, and the wait used to run on to its timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tillflow.engine import (
    MemoryEventStore,
    NewEvent,
    PollBackoff,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
)

LONG = 30.0
"""The wait's own timeout and poll interval: far longer than the test may take."""
PROMPT = 2.0
"""How soon a cancelled wait must be over."""

Wait = Callable[[Runtime], Coroutine[Any, Any, object]]


@contextlib.asynccontextmanager
async def _blocked_runtime() -> AsyncIterator[Runtime]:
    """A runtime whose one processor is stuck in its first event until the block ends (so a
    wait on it can only end by cancellation), polling only every ``LONG`` seconds."""
    gate = threading.Event()

    def blocked(event: RecordedEvent, session: Session) -> None:
        gate.wait(LONG)

    runtime = Runtime(
        MemoryEventStore(),
        [Processor("slow", blocked)],
        poll=PollBackoff(first=LONG, factor=1.0, most=LONG),
    )
    async with runtime:
        try:
            yield runtime
        finally:
            gate.set()


async def _parked(runtime: Runtime, waiting: asyncio.Task[object]) -> None:
    """Until ``waiting`` waits for the processors' progress (a deadline, not a sleep)."""
    progress = runtime._progress
    assert progress is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROMPT
    while not progress._waiters:  # the condition's own queue of waiters
        assert not waiting.done(), waiting
        assert loop.time() < deadline, "the wait never waited for progress"
        await asyncio.sleep(0)


async def _wait_for_receipt(runtime: Runtime) -> object:
    receipt = await runtime.append("s", [NewEvent("A")])
    return await runtime.wait_for(receipt, ["slow"], timeout=LONG)


async def _drain(runtime: Runtime) -> object:
    await runtime.append("s", [NewEvent("A")])
    await runtime.drain(timeout=LONG)
    return None


WAITS: dict[str, Wait] = {"wait_for": _wait_for_receipt, "drain": _drain}


async def _cancelled_promptly(waiting: asyncio.Task[object]) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    done, _ = await asyncio.wait({waiting}, timeout=PROMPT)
    elapsed = loop.time() - started
    if not done:
        waiting.cancel()  # clean up whatever this run's code does with a second cancel
        await asyncio.wait({waiting}, timeout=PROMPT)
    assert done, f"still waiting {elapsed:.1f}s after it was cancelled"
    assert waiting.cancelled()
    with pytest.raises(asyncio.CancelledError):
        waiting.result()


@pytest.mark.parametrize("wait", sorted(WAITS))
async def test_a_cancelled_wait_ends_at_once_with_cancelled_error(
    wait: str,
) -> None:
    async with _blocked_runtime() as runtime:
        waiting = asyncio.create_task(WAITS[wait](runtime))
        await _parked(runtime, waiting)
        waiting.cancel()
        await _cancelled_promptly(waiting)


@pytest.mark.parametrize("wait", sorted(WAITS))
async def test_a_wait_cancelled_as_a_processor_reports_progress_still_ends_at_once(
    wait: str,
) -> None:
    async with _blocked_runtime() as runtime:
        waiting = asyncio.create_task(WAITS[wait](runtime))
        await _parked(runtime, waiting)
        # what a processor's task does after each batch, then the cancellation, in one turn
        await runtime._notify_progress()
        waiting.cancel()
        await _cancelled_promptly(waiting)


ROUNDS = 600
"""Waits started and cancelled at a random moment by the sweep below."""


def _nothing(event: RecordedEvent, session: Session) -> None:
    pass


async def test_a_wait_cancelled_at_any_moment_under_load_ends_cancelled() -> None:
    """A sweep: waits and drains with short timeouts, cancelled after a random number of
    loop turns while a writer appends without pause and two processors report progress
    after every batch — so cancellations land as progress is reported, as timeouts fire
    and in between. Whenever ``cancel()`` found the wait still running, the wait must end
    with ``CancelledError``: not a result, not a timeout. (Asyncio's ``wait_for`` on
    Python 3.11 ended about one such wait in seven with a result instead.)"""
    chosen = random.Random(20261205)
    runtime = Runtime(
        MemoryEventStore(),
        [Processor("p", _nothing), Processor("q", _nothing, after=("p",))],
        poll=PollBackoff(first=0.0005, factor=1.5, most=0.002),
    )
    cancelled = 0
    swallowed: list[str] = []
    async with runtime:

        async def write() -> None:
            for number in itertools.count():
                await runtime.append(f"s-{number % 7}", [NewEvent("A")])

        writer = asyncio.create_task(write())
        try:
            for _ in range(ROUNDS):
                receipt = await runtime.append("x", [NewEvent("A")])
                timeout = chosen.choice([0.0005, 0.002, 0.01, 0.05])
                kind = chosen.choice(["wait_for", "drain"])
                waiting = asyncio.create_task(
                    runtime.wait_for(receipt, ["q"], timeout=timeout)
                    if kind == "wait_for"
                    else runtime.drain(timeout)
                )
                for _ in range(chosen.randint(0, 40)):
                    await asyncio.sleep(0)
                if not waiting.cancel():
                    continue  # it had ended by itself
                cancelled += 1
                done, _ = await asyncio.wait({waiting}, timeout=PROMPT)
                if not (done and waiting.cancelled()):
                    swallowed.append(f"{kind}: {waiting!r}")
                    waiting.cancel()
        finally:
            writer.cancel()
            await asyncio.wait({writer}, timeout=PROMPT)
    assert cancelled >= ROUNDS // 10, f"only {cancelled} waits were cancelled while running"
    assert not swallowed, f"{len(swallowed)} of {cancelled} cancellations lost: {swallowed[:3]}"


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


async def test_a_cancelled_stop_still_stops_and_leaves_no_thread_behind() -> None:
    """``stop()`` cancelled while a batch is under way raises ``CancelledError`` (the caller
    is cancelled) and still stops: once the batch ends, no task, thread or commit listener
    of the runtime is left."""
    inside, gate = threading.Event(), threading.Event()

    def held(event: RecordedEvent, session: Session) -> None:
        inside.set()
        gate.wait(LONG)

    store = MemoryEventStore()
    runtime = Runtime(store, [Processor("held", held)])
    await runtime.start()
    try:
        await runtime.append("s", [NewEvent("A")])
        assert await asyncio.to_thread(inside.wait, LONG), "the batch never started"
        stopping = asyncio.create_task(runtime.stop())
        while not runtime._stopping:
            await asyncio.sleep(0)
        stopping.cancel()
        done, _ = await asyncio.wait({stopping}, timeout=PROMPT)
        assert done and stopping.cancelled(), stopping
    finally:
        gate.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LONG
    while _threads_named("tillflow:held") or _tasks_named("tillflow:held"):
        assert loop.time() < deadline, "a thread or task of the runtime was left behind"
        await asyncio.sleep(0.01)
    assert runtime._remove_listener is None
    assert [row.state for row in runtime.statistics()] == ["stopped"]


def _tasks_named(prefix: str) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith(prefix)]
