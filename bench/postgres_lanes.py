"""Appends per second on PostgreSQL from 32 concurrent writers, by lane count
(``python -m bench.postgres_lanes``).

Starts its own PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary directory, as the
tests do) with ``fsync`` and ``synchronous_commit`` on, prints its settings, then for each
lane count runs ``--repeats`` rounds on a fresh database: 32 threads each appending
one-event checkouts (a new stream each, ``NO_STREAM``) for ``--seconds``. Reports the
median rate per lane count and its ratio to one lane.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Final

from tests.postgres_cluster import running_cluster

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


def appends_per_second(url: str, lanes: int, seconds: float, separate: bool) -> Round:
    """32 writers for ``seconds``, sharing one store (its group commit merges their appends)
    or each with a store of its own (as 32 processes would be: only the lanes let their
    transactions overlap)."""
    PostgresEventStore(url, lanes=lanes).close()  # the schema, before the writers race
    with contextlib.ExitStack() as stack:
        if separate:
            stores = [
                PostgresEventStore(url, lanes=lanes, max_connections=2) for _ in range(WRITERS)
            ]
        else:
            stores = [PostgresEventStore(url, lanes=lanes, max_connections=lanes + 8)] * WRITERS
        for store in set(stores):
            stack.callback(store.close)
        counts = [0] * WRITERS
        start = threading.Barrier(WRITERS + 1)
        stop = threading.Event()

        def write(writer: int) -> None:
            store = stores[writer]
            start.wait()
            for number in itertools.count():
                if stop.is_set():
                    return
                store.append(
                    f"w{writer}-{number}", [NewEvent("CheckedOut", {"n": number})], NO_STREAM
                )
                counts[writer] += 1

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        assert sum(stores[0].heads().values()) == sum(counts)
        jobs = batches = 0
        for store in set(stores):
            grouped = store.writer_statistics()
            jobs, batches = jobs + grouped["jobs"], batches + grouped["batches"]
        return Round(sum(counts) / elapsed, jobs / max(1, batches))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_lanes")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--fsync", choices=["on", "off"], default="on", help="off: no disk flush (not durable)"
    )
    options = parser.parse_args()
    with running_cluster({**SETTINGS, "fsync": options.fsync}) as cluster:
        shown = ", ".join(f"{name}={cluster.setting(name)}" for name in SHOWN)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
        print(f"server: {shown}")
        print(
            f"{WRITERS} writer threads, one-event appends to new streams, "
            f"{options.seconds:g} s per round, median of {options.repeats}"
        )
        for separate in (False, True):
            mode = "a store per writer" if separate else "one shared store"
            rounds: dict[int, list[Round]] = {lanes: [] for lanes in options.lanes}
            for repeat in range(options.repeats):
                for lanes in options.lanes:  # interleaved: drift hits every lane count alike
                    url = cluster.create_database()
                    done = appends_per_second(url, lanes, options.seconds, separate)
                    cluster.drop_database(url)
                    print(
                        f"  {mode}, round {repeat + 1}: {lanes:>2} lanes "
                        f"{done.rate:>9,.0f} appends/s, {done.group:.1f} per transaction"
                    )
                    rounds[lanes].append(done)
            base = statistics.median(done.rate for done in rounds[options.lanes[0]])
            for lanes, done_rounds in rounds.items():
                median = statistics.median(done.rate for done in done_rounds)
                print(
                    f"{mode}: {lanes:>2} lanes {median:>9,.0f} appends/s "
                    f"({median / base:.2f}× {options.lanes[0]})"
                )


if __name__ == "__main__":
    main()
