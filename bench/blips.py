"""Recovery from an SQLite blip: how long processors stay still after the file comes back
(case 20 of ``python -m bench``, ``--only blips``; alone: ``python -m bench.blips``).

Each round appends a backlog to a fresh file, then another process takes the file's write
lock (``BEGIN EXCLUSIVE``) and a runtime starts: its processors read and handle the backlog
but cannot commit, go ``degraded`` and retry with backoff. After ``hold`` seconds the lock
holder exits; the figure is the time from its exit until the first processor's first batch
commits. Two busy timeouts: the serve default (a lane mostly waits inside its commit, which
goes through as the lock is let go) and a short one (a lane mostly sleeps out its backoff,
so the backoff's cap decides).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tests.integration.test_sqlite_locked import held_lock

from bench.cases import Context, Progress, scratch
from bench.report import CaseResult
from tillflow.engine import NewEvent, Processor, RecordedEvent, Runtime, Session, SqliteEventStore
from tillflow.service.bootstrap import BUSY_TIMEOUT

TARGET: Final = 2.0
"""Seconds from the database coming back to processors moving again."""
BACKLOG: Final = 2_000
BUSY_TIMEOUTS: Final = (BUSY_TIMEOUT, 0.2)


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)


def _total(event: RecordedEvent, session: Session) -> None:
    session.put("totals", "seen", (session.get("totals", "seen") or 0) + 1)


PROCESSORS: Final = (Processor("counts", _count), Processor("totals", _total, after=("counts",)))


async def seconds_until(moved: Callable[[], bool], since: float, limit: float = 60.0) -> float:
    """Seconds from ``since`` (a ``time.monotonic()``) until ``moved()`` holds, polled every
    2 ms; ``RuntimeError`` past ``limit`` seconds."""
    while not moved():
        if time.monotonic() - since > limit:
            raise RuntimeError(f"the processors did not move within {limit:g} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - since


async def recovery_seconds(path: Path, hold: float, busy_timeout: float) -> float:
    """One round (see the module docstring): seconds from the lock's release to the first
    commit."""
    with SqliteEventStore(path, busy_timeout=busy_timeout) as store:
        for _ in range(BACKLOG // 500):
            store.append("backlog", [NewEvent("Noted")] * 500)
        runtime = Runtime(store, list(PROCESSORS))
        with held_lock(path):
            await runtime.start()
            try:
                deadline = time.monotonic() + 30
                while not runtime.health.degraded:  # a batch in hand, refused
                    if time.monotonic() > deadline:
                        raise RuntimeError("the processors never met the lock")
                    await asyncio.sleep(0.005)
                await asyncio.sleep(hold)
            except BaseException:
                await runtime.stop()
                raise
        released = time.monotonic()  # the holder has exited: its lock is gone
        [lane] = runtime.lanes["counts"]
        try:
            moved = await seconds_until(lambda: lane.batches > 0, released)
            await runtime.drain(timeout=60)
        finally:
            await runtime.stop()
        if store.read_view("totals", "seen") != str(BACKLOG).encode():
            raise RuntimeError("the backlog was not handled exactly once")
        return moved


def measure(
    directory: Path | None, rounds: int, hold: float, progress: Progress
) -> dict[float, list[float]]:
    """Per busy timeout, each round's recovery seconds."""
    figures: dict[float, list[float]] = {}
    for busy_timeout in BUSY_TIMEOUTS:
        for round_number in range(rounds):
            progress(f"blips: busy timeout {busy_timeout:g} s, round {round_number + 1}/{rounds}")
            with scratch(directory) as path:
                seconds = asyncio.run(recovery_seconds(path, hold, busy_timeout))
            figures.setdefault(busy_timeout, []).append(seconds)
    return figures


def rounds_and_hold(context: Context, hold: float) -> tuple[int, float]:
    """How many rounds, and how long the database stays away in each: two short ones with
    ``--quick``, else two per repeat of ``hold`` seconds."""
    return (2, 1.5) if context.sizes.batches < 100 else (context.repeats * 2, hold)


def recovery_result(case: str, worst: float, notes: str, data: dict[str, Any]) -> CaseResult:
    """A recovery case's row: its worst round against :data:`TARGET`."""
    return CaseResult(
        case=case,
        tillflow=f"{worst:.2f} s",
        reference="—",
        ratio=None,
        target=f"≤ {TARGET:g} s",
        passed=worst <= TARGET,
        notes=notes,
        data=data,
    )


def blip_recovery(context: Context) -> CaseResult:
    rounds, hold = rounds_and_hold(context, 3.0)
    figures = measure(context.directory, rounds, hold, context.progress)
    notes = "; ".join(
        f"busy timeout {busy_timeout:g} s: median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s over {len(values)} rounds"
        for busy_timeout, values in figures.items()
    )
    return recovery_result(
        "blip recovery",
        max(max(values) for values in figures.values()),
        f"write lock held {hold:g} s by another process, then let go; {notes}",
        {str(busy_timeout): values for busy_timeout, values in figures.items()},
    )


BLIP_CASES: Final = (blip_recovery,)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.blips", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=3.0)
    arguments = parser.parse_args()
    figures = measure(None, arguments.rounds, arguments.hold, print)
    for busy_timeout, values in figures.items():
        shown = ", ".join(f"{value:.3f}" for value in values)
        print(f"busy timeout {busy_timeout:g} s: {shown} s (target ≤ {TARGET:g} s)")


if __name__ == "__main__":
    main()
