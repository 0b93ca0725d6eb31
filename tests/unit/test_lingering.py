"""Lingering processors (``Processor.linger``): a lane starts its batches at least
``linger`` apart, so events arriving meanwhile come in one batch; whoever needs it now —
a ``wait_for`` naming it or a processor behind it, a drain, a stop — hurries it."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from tillflow.engine import (
    InvalidEvent,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
)
from tillflow.engine.lane_processor import LaneProcessor, StepResult

LONG = 30.0
"""A linger no test waits out: a test that passes did not wait for it."""


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)


def _record_step_starts(lane: LaneProcessor) -> list[float]:
    starts: list[float] = []
    step = lane.step

    def recorded() -> StepResult:
        starts.append(time.monotonic())
        return step()

    lane.step = recorded  # type: ignore[method-assign]
    return starts


async def _first_steps_taken(*step_starts: list[float]) -> None:
    """Until each lane has taken its first step (at once, on start): its linger runs."""
    async with asyncio.timeout(10):
        while not all(step_starts):
            await asyncio.sleep(0.01)


async def _steps_while_appending(linger: float) -> tuple[list[float], int]:
    """Append an event every 10 ms for 0.8 s to a processor lingering ``linger`` seconds:
    the start times of its steps until the drain at the end (which hurries it), and the
    events appended."""
    store = MemoryEventStore()
    runtime = Runtime(store, [Processor("slow", _count, linger=linger)])
    starts = _record_step_starts(runtime.lanes["slow"][0])
    appended = 0
    async with runtime:
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            store.append("s", [NewEvent("Noted")])
            appended += 1
            await asyncio.sleep(0.01)
        draining = time.monotonic()
        await runtime.drain(timeout=10)
    assert store.read_view("counts", "Noted") == str(appended).encode()
    return [start for start in starts if start < draining], appended


def _gaps(starts: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(starts)]


async def test_a_lingering_lane_starts_its_batches_at_least_linger_apart() -> None:
    starts, appended = await _steps_while_appending(0.2)
    assert len(starts) >= 3
    assert min(_gaps(starts)) >= 0.2 - 0.005, _gaps(starts)
    assert len(starts) * 4 < appended  # a batch per linger, not per append


async def test_without_linger_a_lane_steps_on_every_commit() -> None:
    """The negative control: the same load without linger steps far more often."""
    starts, _ = await _steps_while_appending(0.0)
    assert min(_gaps(starts)) < 0.2
    assert len(starts) > math.ceil(0.8 / 0.2) + 1  # more than one step per 0.2 s


async def test_wait_for_hurries_the_lingering_processor_and_those_upstream() -> None:
    store = MemoryEventStore()
    processors = [
        Processor("numbers", _count, linger=LONG),
        Processor("after_numbers", _count, after=("numbers",)),
    ]
    runtime = Runtime(store, processors)
    starts = _record_step_starts(runtime.lanes["numbers"][0])
    async with runtime:
        await _first_steps_taken(starts)
        receipt = store.append("s", [NewEvent("Noted")])
        outcome = await runtime.wait_for(receipt, ["numbers"], timeout=10)
        assert outcome.reached, outcome
        receipt = store.append("s", [NewEvent("Noted")])
        outcome = await runtime.wait_for(receipt, ["after_numbers"], timeout=10)
        assert outcome.reached, outcome  # behind "numbers": it was hurried too
        assert store.checkpoint("numbers", 0) == receipt.positions[0]


async def test_a_wait_not_naming_it_leaves_a_lingering_processor_to_its_linger() -> None:
    store = MemoryEventStore()
    processors = [Processor("numbers", _count, linger=LONG), Processor("report", _count)]
    runtime = Runtime(store, processors)
    starts = _record_step_starts(runtime.lanes["numbers"][0])
    async with runtime:
        await _first_steps_taken(starts)
        receipt = store.append("s", [NewEvent("Noted")])
        assert (await runtime.wait_for(receipt, ["report"], timeout=10)).reached
        await asyncio.sleep(0.1)  # time it would take to step, were it not lingering
        assert store.checkpoint("numbers", 0) == 0
        assert len(starts) == 1


async def test_drain_and_stop_do_not_wait_out_a_linger() -> None:
    store = MemoryEventStore()
    runtime = Runtime(store, [Processor("numbers", _count, linger=LONG)])
    starts = _record_step_starts(runtime.lanes["numbers"][0])
    await runtime.start()
    try:
        await _first_steps_taken(starts)
        store.append("s", [NewEvent("Noted")])
        await runtime.drain(timeout=10)
        assert store.read_view("counts", "Noted") == b"1"
        # the drain's last hurry is kept: one more batch at once, then a linger again
        receipt = store.append("s", [NewEvent("Noted")])
        async with asyncio.timeout(10):
            while store.checkpoint("numbers", 0) < receipt.positions[0]:
                await asyncio.sleep(0.01)
    finally:
        async with asyncio.timeout(10):
            await runtime.stop()


@pytest.mark.parametrize("linger", [-0.5, math.nan, math.inf, 61.0, True, "1"])
def test_a_linger_out_of_range_is_refused_naming_it(linger: object) -> None:
    with pytest.raises(InvalidEvent, match="linger"):
        Processor("p", _count, linger=linger)  # type: ignore[arg-type]
