"""Appends per second on PostgreSQL from 32 concurrent writers, by lane count
(``python -m bench.postgres_lanes``).

Starts its own PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary directory, as the
tests do) with ``synchronous_commit`` on (and ``fsync`` on unless ``--fsync off``), prints
its settings, then for each lane count runs ``--repeats`` rounds on a fresh database, lane
counts interleaved, 32 writers appending one-event checkouts (a new stream each,
``NO_STREAM``) for ``--seconds``, in two arrangements:

- ``threads``: 32 threads sharing one store, whose group commit per lane merges their
  appends into one transaction per lane at a time;
- ``processes``: 32 processes with a store each, as tills on many machines would be: nothing
  merges their appends, only the lanes let their transactions overlap.

Prints the median rate per lane count and its ratio to the first lane count. The
``processes`` arrangement is also case 16 of ``python -m bench`` (``--only postgres``).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Final

import psutil
from tests.postgres_cluster import running_cluster

from bench.cases import Context
from bench.report import CaseResult, rate
from tillflow.engine import NO_STREAM, NewEvent
from tillflow.engine.postgres import PostgresEventStore

WRITERS: Final = 32
SETTINGS: Final = {"synchronous_commit": "on", "max_connections": "200"}
SHOWN: Final = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


@dataclass(frozen=True)
class Round:
    rate: float
    """Committed appends per second."""
    group: float
    """Appends per transaction."""
    busy: float = 0.0
    """The share of the machine's CPU time that was busy meanwhile (every process: the
    writers, the server, anything else), 0–1."""

    @property
    def cpu_per_append(self) -> float:
        """Busy CPU microseconds per committed append."""
        return self.busy * (os.cpu_count() or 1) * 1e6 / self.rate if self.rate else 0.0


class MachineBusy:
    """The share of all CPUs' time that was busy (not idle, not waiting for I/O) between
    :meth:`start` and :meth:`share`, machine-wide."""

    def start(self) -> None:
        self._before = psutil.cpu_times()

    def share(self) -> float:
        after = psutil.cpu_times()
        total = sum(after) - sum(self._before)
        idle = (after.idle - self._before.idle) + (after.iowait - self._before.iowait)
        return (total - idle) / total if total > 0 else 0.0


def _write_until(store: PostgresEventStore, writer: int, stop: Callable[[], bool]) -> int:
    for number in itertools.count():
        if stop():
            return number
        store.append(f"w{writer}-{number}", [NewEvent("CheckedOut", {"n": number})], NO_STREAM)
    raise AssertionError("unreachable")


def threads_round(url: str, lanes: int, seconds: float) -> Round:
    """32 threads sharing one store for ``seconds``."""
    store = PostgresEventStore(url, lanes=lanes, max_connections=lanes + 8)
    try:
        counts = [0] * WRITERS
        start = threading.Barrier(WRITERS + 1)
        stop = threading.Event()

        def write(writer: int) -> None:
            start.wait()
            counts[writer] = _write_until(store, writer, stop.is_set)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        busy = MachineBusy()
        start.wait()
        busy.start()
        began = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        shared = busy.share()
        assert sum(store.heads().values()) == sum(counts)
        grouped = store.writer_statistics()
        return Round(sum(counts) / elapsed, grouped["jobs"] / max(1, grouped["batches"]), shared)
    finally:
        store.close()


def _process_writer(
    url: str, writer: int, start: Barrier, seconds: float, done: Queue[int]
) -> None:
    store = PostgresEventStore(url, max_connections=2)
    try:
        start.wait()
        until = time.monotonic() + seconds
        done.put(_write_until(store, writer, lambda: time.monotonic() >= until))
    finally:
        store.close()


def processes_round(url: str, lanes: int, seconds: float) -> Round:
    """32 processes with a store each for ``seconds`` (from when all are ready)."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS + 1)  # and this process, to time the machine's CPU
    done: Queue[int] = context.Queue()
    writers = [
        context.Process(target=_process_writer, args=(url, writer, start, seconds, done))
        for writer in range(WRITERS)
    ]
    for process in writers:
        process.start()
    busy = MachineBusy()
    start.wait(timeout=120)
    busy.start()
    time.sleep(seconds)  # the writers' own clocks end their rounds
    shared = busy.share()
    counts = [done.get(timeout=seconds + 120) for _ in writers]
    for process in writers:
        process.join()
    with PostgresEventStore(url, lanes=lanes) as store:
        assert sum(store.heads().values()) == sum(counts)
    return Round(sum(counts) / seconds, 1.0, shared)


ARRANGEMENTS: Final = {"threads": threads_round, "processes": processes_round}
LANES_TARGET: Final = 3.0
CASE_LANES: Final = (1, 4, 8, 16)
CASE_SECONDS: Final = 4.0


def lanes_case(context: Context) -> CaseResult:
    """Case 16 of ``python -m bench`` (group ``postgres``): 32 writer processes, medians of
    ``context.repeats`` rounds per lane count, 8 lanes against one."""
    rounds: dict[int, list[Round]] = {lanes: [] for lanes in CASE_LANES}
    with running_cluster({**SETTINGS, "fsync": "on"}) as cluster:
        shown = {name: cluster.setting(name) for name in SHOWN}
        for repeat in range(context.repeats):
            for lanes in CASE_LANES:
                context.progress(f"PostgreSQL lanes, run {repeat + 1}/{context.repeats}: {lanes}")
                url = cluster.create_database()
                PostgresEventStore(url, lanes=lanes).close()
                rounds[lanes].append(processes_round(url, lanes, CASE_SECONDS))
                cluster.drop_database(url)
    rates = {lanes: [done.rate for done in each] for lanes, each in rounds.items()}
    medians = {lanes: statistics.median(done) for lanes, done in rates.items()}
    busy = {lanes: statistics.median(done.busy for done in each) for lanes, each in rounds.items()}
    ratio = medians[8] / medians[1]
    return CaseResult(
        case="16 PostgreSQL appends, 8 lanes vs 1",
        tillflow=rate(medians[8], " appends/s"),
        reference=f"1 lane {rate(medians[1], ' appends/s')}",
        ratio=ratio,
        target=f"≥ {LANES_TARGET:g}× one lane",
        passed=ratio >= LANES_TARGET,
        notes=(
            f"32 writer processes, one-event checkouts, {CASE_SECONDS:g} s per run; "
            + ", ".join(f"{lanes} lanes {rate(medians[lanes])}" for lanes in CASE_LANES)
            + f"; CPU busy {busy[1]:.0%} at 1 lane, {busy[8]:.0%} at 8 (at the same CPU "
            f"an append, lanes can give at most {1 / max(busy[1], 0.01):.1f}× here)"
            + f"; server {shown['server_version'].split()[0]}, fsync {shown['fsync']}, "
            f"synchronous_commit {shown['synchronous_commit']}; load {os.getloadavg()[0]:.1f}"
        ),
        data={
            "rates": {str(lanes): done for lanes, done in rates.items()},
            "busy": {str(lanes): [done.busy for done in each] for lanes, each in rounds.items()},
            "server": shown,
        },
    )


POSTGRES_CASES: Final = [lanes_case]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_lanes")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--fsync", choices=["on", "off"], default="on", help="off: no disk flush (not durable)"
    )
    parser.add_argument(
        "--only", choices=sorted(ARRANGEMENTS), action="append", help="one arrangement"
    )
    options = parser.parse_args()
    with running_cluster({**SETTINGS, "fsync": options.fsync}) as cluster:
        shown = ", ".join(f"{name}={cluster.setting(name)}" for name in SHOWN)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
        print(f"server: {shown}")
        print(
            f"{WRITERS} writers, one-event appends to new streams, {options.seconds:g} s "
            f"per round, median of {options.repeats}"
        )
        for name in options.only or list(ARRANGEMENTS):
            run = ARRANGEMENTS[name]
            rounds: dict[int, list[Round]] = {lanes: [] for lanes in options.lanes}
            for repeat in range(options.repeats):
                for lanes in options.lanes:  # interleaved: drift hits every lane count alike
                    url = cluster.create_database()
                    PostgresEventStore(url, lanes=lanes).close()  # the schema, made once
                    done = run(url, lanes, options.seconds)
                    cluster.drop_database(url)
                    print(
                        f"  {name}, round {repeat + 1}: {lanes:>2} lanes "
                        f"{done.rate:>9,.0f} appends/s, {done.group:.1f} per transaction, "
                        f"CPU {done.busy:.0%} busy, {done.cpu_per_append:,.0f} µs an append"
                    )
                    rounds[lanes].append(done)
            base = statistics.median(done.rate for done in rounds[options.lanes[0]])
            for lanes, done_rounds in rounds.items():
                median = statistics.median(done.rate for done in done_rounds)
                busy = statistics.median(done.busy for done in done_rounds)
                cost = statistics.median(done.cpu_per_append for done in done_rounds)
                print(
                    f"{name}: {lanes:>2} lanes {median:>9,.0f} appends/s "
                    f"({median / base:.2f}× {options.lanes[0]}), CPU {busy:.0%} busy, "
                    f"{cost:,.0f} µs an append"
                )
        print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
