"""The asyncio runtime over the memory backend: lifecycle, drain, wait_for, failures."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tillflow.engine import (
    DrainTimeout,
    MemoryEventStore,
    NewEvent,
    Processor,
    ProcessorStopped,
    RecordedEvent,
    RetryWithBackoff,
    Runtime,
    Session,
    UnknownProcessor,
)


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)


def _tasks_named_tillflow() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("tillflow:")]


async def test_start_and_stop_leave_no_task_or_thread_behind() -> None:
    threads_before = {t.name for t in threading.enumerate()}
    store = MemoryEventStore()
    async with Runtime(store, [Processor("a", _count), Processor("b", _count, after=("a",))]):
        assert len(_tasks_named_tillflow()) == 2
    assert _tasks_named_tillflow() == []
    leftover = {t.name for t in threading.enumerate()} - threads_before
    assert not [name for name in leftover if name.startswith("tillflow")]


async def test_nothing_runs_before_start() -> None:
    store = MemoryEventStore()
    store.append("s", [NewEvent("A")])
    Runtime(store, [Processor("a", _count)])
    await asyncio.sleep(0)
    assert store.checkpoint("a", 0) == 0


async def test_drain_waits_for_the_whole_chain_including_emitted_events() -> None:
    store = MemoryEventStore(lane_count=3)

    def ship(event: RecordedEvent, session: Session) -> None:
        session.emit(f"shipment-{event.stream}", "Shipped", event.payload())

    processors = [
        Processor("orders", ship, types=frozenset({"Ordered"})),
        Processor("report", _count, after=("orders",)),
    ]
    async with Runtime(store, processors) as runtime:
        for n in range(50):
            await runtime.append(f"order-{n}", [NewEvent("Ordered", {"n": n})])
        await runtime.drain(timeout=10)
        assert store.read_view("counts", "Ordered") is not None
        counted = sum(int(v) for _, v in store.view_rows("counts"))
        assert counted == 100  # 50 orders + 50 shipments, each counted once
        for stats in runtime.statistics():
            assert stats.lag_events == 0
            assert stats.checkpoint == stats.head


async def test_wait_for_reached_reports_read_your_writes() -> None:
    store = MemoryEventStore()
    async with Runtime(store, [Processor("a", _count), Processor("b", _count, after=("a",))]) as rt:
        receipt = await rt.append("s", [NewEvent("A")])
        outcome = await rt.wait_for(receipt, ["b"], timeout=5)
        assert outcome.reached and bool(outcome)
        assert store.read_view("counts", "A") == b"2"  # a and b each counted it


async def test_wait_for_times_out_on_time_and_says_how_far_behind() -> None:
    store = MemoryEventStore()
    gate = threading.Event()

    def blocked(event: RecordedEvent, session: Session) -> None:
        gate.wait(10)

    async with Runtime(store, [Processor("slow", blocked)]) as rt:
        receipt = await rt.append("s", [NewEvent("A"), NewEvent("A")])
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await rt.wait_for(receipt, ["slow"], timeout=0.2)
        elapsed = loop.time() - started
        gate.set()
        assert outcome.status == "timed_out"
        assert outcome.behind == {"slow": 2}
        assert 0.2 <= elapsed < 2.0


async def test_wait_for_a_processor_downstream_of_a_failed_one_fails_fast() -> None:
    store = MemoryEventStore()

    def broken(event: RecordedEvent, session: Session) -> None:
        raise ValueError("broken handler")

    processors = [Processor("up", broken), Processor("down", _count, after=("up",))]
    async with Runtime(store, processors) as rt:
        receipt = await rt.append("s", [NewEvent("A")])
        outcome = await rt.wait_for(receipt, ["down"], timeout=30)
        assert outcome.status == "failed"
        assert "broken handler" in outcome.failures["up"]
        assert outcome.elapsed < 10
        with pytest.raises(ProcessorStopped) as caught:
            await rt.drain(timeout=30)
        assert caught.value.processor == "up"
        [up, down] = rt.statistics()
        assert up.state == "failed"
        assert up.failed_position == 1 and up.checkpoint == 0
        assert up.error is not None and "broken handler" in up.error
        assert down.state == "waiting" and down.waiting_on == "up"


async def test_wait_for_unknown_processor_is_refused() -> None:
    async with Runtime(MemoryEventStore(), [Processor("a", _count)]) as rt:
        receipt = await rt.append("s", [NewEvent("A")])
        with pytest.raises(UnknownProcessor):
            await rt.wait_for(receipt, ["nope"], timeout=1)


async def test_drain_timeout_names_who_is_behind() -> None:
    store = MemoryEventStore()
    gate = threading.Event()

    def blocked(event: RecordedEvent, session: Session) -> None:
        gate.wait(10)

    async with Runtime(store, [Processor("slow", blocked)]) as rt:
        await rt.append("s", [NewEvent("A")])
        with pytest.raises(DrainTimeout) as caught:
            await rt.drain(timeout=0.2)
        gate.set()
        assert caught.value.behind == {"slow": 1}


async def test_retry_policy_retries_then_succeeds_without_skipping() -> None:
    store = MemoryEventStore()
    attempts: list[int] = []

    def flaky(event: RecordedEvent, session: Session) -> None:
        attempts.append(event.position)
        if len(attempts) < 3:
            raise ConnectionError("blip")
        _count(event, session)

    policy = RetryWithBackoff(max_attempts=5, base=0.001, cap=0.01)
    async with Runtime(store, [Processor("p", flaky)], failure_policy=policy) as rt:
        await rt.append("s", [NewEvent("A")])
        await rt.drain(timeout=10)
    assert attempts == [1, 1, 1]
    assert store.read_view("counts", "A") == b"1"


async def test_restart_resumes_at_the_failed_event() -> None:
    store = MemoryEventStore()
    healthy = threading.Event()

    def sometimes(event: RecordedEvent, session: Session) -> None:
        if not healthy.is_set():
            raise ValueError("not yet")
        _count(event, session)

    async with Runtime(store, [Processor("p", sometimes)]) as rt:
        await rt.append("s", [NewEvent("A"), NewEvent("A")])
        with pytest.raises(ProcessorStopped):
            await rt.drain(timeout=10)
    assert store.checkpoint("p", 0) == 0
    healthy.set()
    async with Runtime(store, [Processor("p", sometimes)]) as rt:
        await rt.drain(timeout=10)
    assert store.read_view("counts", "A") == b"2"
