"""Recovery from a PostgreSQL restart: how long processors stay still after the server comes
back (case 22 of ``python -m bench``, ``--only blips``; alone: ``python -m
bench.postgres_blips``).

Each round starts a private cluster, appends a backlog spread over every lane, starts a
runtime and, once its processors are under way, crashes the server (``pg_ctl -m
immediate``): the processors go ``degraded`` and retry with backoff. After ``hold`` seconds
the server starts again; the figure is the time from ``pg_ctl start`` returning (the server
accepts connections) until a processor's next batch commits. Every round checks that the
backlog was handled exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Final

from tests.postgres_cluster import running_cluster

from bench.blips import TARGET, recovery_result, rounds_and_hold, seconds_until
from bench.cases import Context, Progress
from bench.report import CaseResult
from tillflow.engine import NewEvent, Processor, RecordedEvent, Runtime, Session
from tillflow.engine.postgres import PostgresEventStore

BACKLOG: Final = 40_000
STREAMS: Final = 64


def _counter(view: str) -> Callable[[RecordedEvent, Session], None]:
    """Counts per stream into ``view`` (a stream's events are on one lane: no row is
    shared by lanes)."""

    def count(event: RecordedEvent, session: Session) -> None:
        session.put(view, event.stream, (session.get(view, event.stream) or 0) + 1)

    return count


PROCESSORS: Final = (
    Processor("first", _counter("first")),
    Processor("second", _counter("second"), after=("first",)),
)


def _batches(runtime: Runtime) -> int:
    return sum(lane.batches for lanes in runtime.lanes.values() for lane in lanes)


async def recovery_seconds(hold: float) -> float:
    """One round (see the module docstring): seconds from the server's restart to the next
    commit of a processor."""
    with running_cluster() as cluster:
        url = cluster.create_database()
        with PostgresEventStore(url, connect_timeout=2, pool_timeout=2) as store:
            for number in range(BACKLOG // 500):
                store.append(f"backlog-{number % STREAMS}", [NewEvent("Noted")] * 500)
            runtime = Runtime(store, list(PROCESSORS))
            await runtime.start()
            try:
                deadline = time.monotonic() + 60
                while _batches(runtime) < 2:  # under way, far from done
                    if time.monotonic() > deadline:
                        raise RuntimeError("the processors never started")
                    await asyncio.sleep(0.002)
                await asyncio.to_thread(cluster.stop, "immediate")
                while not runtime.health.degraded:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the processors never met the outage")
                    await asyncio.sleep(0.005)
                await asyncio.sleep(hold)
                await asyncio.to_thread(cluster.start)
                back, before = time.monotonic(), _batches(runtime)
                moved = await seconds_until(lambda: _batches(runtime) > before, back)
                await runtime.drain(timeout=120)
            finally:
                await runtime.stop()
            seen = sum(
                int(value) for view in ("first", "second") for _, value in store.view_rows(view)
            )
            if seen != 2 * BACKLOG:  # once by each processor
                raise RuntimeError(f"{seen} events handled, not {2 * BACKLOG}")
            return moved


def measure(rounds: int, hold: float, progress: Progress) -> list[float]:
    figures = []
    for round_number in range(rounds):
        progress(f"PostgreSQL restart, round {round_number + 1}/{rounds}")
        figures.append(asyncio.run(recovery_seconds(hold)))
    return figures


def restart_recovery(context: Context) -> CaseResult:
    rounds, hold = rounds_and_hold(context, 6.0)
    figures = measure(rounds, hold, context.progress)
    worst = max(figures)
    return recovery_result(
        "22 PostgreSQL restart recovery",
        worst,
        f"server crashed (pg_ctl -m immediate) with processors mid-backlog, down {hold:g} s, "
        f"then started; from pg_ctl start to the next commit: median "
        f"{statistics.median(figures):.2f} s, max {worst:.2f} s over {len(figures)} rounds",
        {"seconds": figures},
    )


POSTGRES_BLIP_CASES: Final = (restart_recovery,)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_blips", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the server is down")
    arguments = parser.parse_args()
    figures = measure(arguments.rounds, arguments.hold, lambda text: print(text, flush=True))
    print(" ".join(f"{seconds:.2f}" for seconds in figures), "s; target ≤", TARGET, "s")


if __name__ == "__main__":
    main()
