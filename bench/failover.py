"""Failover of ``tillflow worker`` processes on PostgreSQL: how long the lanes of a worker
that goes stay without a committer (case 18 of ``python -m bench``, ``--only postgres``;
alone: ``python -m bench.failover``).

On the benchmark's own cluster (:func:`bench.postgres_shop.bench_cluster`), a fresh
database of 16 lanes gets the workload's catalog and stock; three workers share the shop's
processors (Inventory, the report and the others: :data:`GROUPS`, each run whole by one
worker, all its lanes) by leases (``--lease-ttl``) while a till thread keeps ringing
up checkouts (a batch of 8 every 50 ms, so every lane keeps getting work; it holds back
while the workers are far behind: :data:`MOST_BEHIND`). Then, one at a time, each
followed by a fresh worker and a wait until the groups are spread out again:

- **SIGKILL** of the worker holding the most lanes: for each lease it held, the time from
  the kill until a commit on that lane under another worker's lease: the lease row shows a
  new owner at a higher epoch, and the lane's checkpoint then moves past where it stood
  when that owner was first seen (a takeover waits for a batch committing under the old
  lease, so that position includes all of the old owner's work). A kill's figure is its
  slowest lane; the distribution over the kills is compared with TTL + 2 s.
- **SIGTERM** of the worker holding the most lanes, timed the same way from the signal: the
  worker resigns its leases at once (the others, told by a ``NOTIFY``, take them in a
  round of their own then) and exits; compared with 1 s. Its exit is timed too.

Each lane's time is also split in two: until its lease was seen taken over, then the new
owner's way to its first commit.

Resolution: the poll interval (20 ms), plus at most one batch when the new owner committed
before the poll saw it. At the end the tills stop, the workers drain, and the report is
checked against the truth (nothing lost or applied twice across the kills).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from tests.postgres_cluster import PostgresCluster

from bench.cases import Context, Progress
from bench.pos import workload
from bench.postgres_shop import (
    LANES,
    RunFailed,
    WorkerProcess,
    behind,
    bench_cluster,
    caught_up,
    pid_of,
    placed,
    seed,
    verify,
    wait_until,
)
from bench.report import CaseResult
from bench.shop import BASKETS, percentile
from tillflow.engine import format_id, new_event_id
from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop, shop_processors
from tillflow.shop.sale.commands import Checkout

WORKERS: Final = 3
TTL: Final = 2.0
"""The workers' lease TTL in the case (``tillflow worker --lease-ttl``)."""
KILL_MARGIN: Final = 2.0
"""A killed worker's lanes must commit again within TTL + this, at p99."""
HANDOVER_TARGET: Final = 1.0
MIN_KILLS: Final = 20
"""Kills the target asks for (fewer: the case is a smoke test and cannot pass)."""
POLL: Final = 0.02
TILL_BATCH: Final = 8
TILL_PAUSE: Final = 0.05
"""The till's pace: at most 160 checkouts/s, about ten events a second on every lane (a
commit to wait for), light enough for the workers to keep up on a small machine."""
MOST_BEHIND: Final = 600
"""Positions Inventory and the report may be behind the heads, summed, before the till
holds back (about two seconds of the till's work; ``--most-behind``): on a machine that
other work leaves too little of (two cores shared with a test suite), 160 checkouts/s
outruns the workers, and then every lane's backlog, and each new owner's wait behind its
other lanes' batches, grows without end: a figure of the machine, not of failover."""

GROUPS: Final = tuple(processor.name for processor in shop_processors())
"""The processor groups whose lanes the workers share (``tillflow worker`` runs them all)."""

Signal = Literal["SIGKILL", "SIGTERM"]
Lane = tuple[str, int]


@dataclass(frozen=True)
class Lease:
    owner: int | None
    epoch: int
    held: bool


def lanes_now(store: PostgresEventStore) -> tuple[dict[Lane, Lease], dict[Lane, int]]:
    """Every lease, then every checkpoint (read after the leases: a lease seen taken
    over comes with every commit under the lease before it)."""
    leases = {
        (row.processor, row.lane): Lease(pid_of(row.owner), row.epoch, row.held)
        for row in store.leases.rows()
    }
    checkpoints = store.checkpoints()
    positions = {
        (group, lane): checkpoints.get(group, {}).get(lane, 0)
        for group in GROUPS
        for lane in range(store.lane_count)
    }
    return leases, positions


def held_by(store: PostgresEventStore) -> dict[int, list[Lane]]:
    """The lanes each worker (pid) holds now."""
    found: dict[int, list[Lane]] = {}
    for lane, lease in lanes_now(store)[0].items():
        if lease.held and lease.owner is not None:
            found.setdefault(lease.owner, []).append(lane)
    return found


@dataclass
class Takeover:
    """One SIGKILL or SIGTERM: seconds until each lane the worker held committed again
    under someone else (``None``: not within the deadline)."""

    signal: Signal
    lanes: dict[Lane, float | None]
    taken: dict[Lane, float] = field(default_factory=dict)
    """Seconds until each lane was first seen under another worker's lease (of the lanes
    that were): the rest of :attr:`lanes` is the new owner's way to its first commit."""
    exited: float | None = None
    """Seconds until the worker's process had exited."""

    @property
    def seconds(self) -> float | None:
        """Until every lane had committed again."""
        values = list(self.lanes.values())
        return None if not values or None in values else max(v for v in values if v is not None)


def watch_takeover(
    store: PostgresEventStore,
    victim: int,
    orphaned: dict[Lane, int],
    signalled: float,
    deadline: float,
    taken: dict[Lane, float],
) -> dict[Lane, float | None]:
    """For each orphaned lane (with the epoch it was held at), the seconds from
    ``signalled`` (monotonic) to its first commit under another worker's lease; ``taken``
    gets the seconds until each was first seen under that lease."""
    seen_at: dict[Lane, int] = {}
    done: dict[Lane, float | None] = dict.fromkeys(orphaned)
    waiting = set(orphaned)
    while waiting and time.monotonic() < deadline:
        leases, positions = lanes_now(store)
        now = time.monotonic()
        for lane in list(waiting):
            lease = leases.get(lane)
            if not (
                lease is not None
                and lease.held
                and lease.owner != victim
                and lease.epoch > orphaned[lane]
            ):
                continue
            if lane not in seen_at:
                seen_at[lane] = positions[lane]
                taken[lane] = now - signalled
            elif positions[lane] > seen_at[lane]:
                done[lane] = now - signalled
                waiting.discard(lane)
        time.sleep(POLL)
    return done


class Till:
    """A till ringing up the workload's checkouts in small batches until stopped."""

    def __init__(self, store: PostgresEventStore, most_behind: int = MOST_BEHIND) -> None:
        self.store = store
        self.most_behind = most_behind
        self.shop = Shop(store)
        self.count = 0
        self.held_back = 0.0
        """Seconds the till waited for the workers (:data:`MOST_BEHIND`)."""
        self.seconds = 0.0
        """Seconds from start to stop."""
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-till", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        baskets = workload().baskets
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if sum(behind(self.store)) > self.most_behind:
                    self._stop.wait(TILL_PAUSE)
                    self.held_back += TILL_PAUSE
                    continue
                commands = [
                    Checkout(format_id(new_event_id()), "till-01", baskets[n % BASKETS].lines)
                    for n in range(self.count, self.count + TILL_BATCH)
                ]
                outcomes = self.shop.sale.checkout_many(commands)
                refused = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
                if refused:
                    raise RunFailed("failed", f"a checkout was refused: {refused[0]!r}")
                self.count += TILL_BATCH
                self._stop.wait(TILL_PAUSE)
        except BaseException as error:
            self.error = error
        finally:
            self.seconds = time.monotonic() - started

    def pace(self) -> str:
        """The checkouts rung up per second, and the share of the time held back."""
        seconds = max(self.seconds, 1e-9)
        return (
            f"the till rang up {self.count / seconds:.0f} checkouts/s (at most "
            f"{TILL_BATCH / TILL_PAUSE:.0f}), held back {self.held_back / seconds:.0%} of the "
            f"time (Inventory and the report more than {self.most_behind:,} positions behind)"
        )

    def stop(self) -> int:
        """Stop; the checkouts rung up (:class:`RunFailed` if the till had failed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60.0)
        if self.error is not None:
            raise RunFailed("failed", f"the till failed: {self.error}") from self.error
        return self.count

    def halt(self) -> None:
        """Stop, whatever happened (cleaning up after a failed run)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60.0)


@dataclass
class FailoverRun:
    """One run: every SIGKILL and SIGTERM. Only an ``ok`` run's figures mean anything."""

    ttl: float
    workers: int
    status: str = "ok"
    detail: str = ""
    kills: list[Takeover] = field(default_factory=list)
    handovers: list[Takeover] = field(default_factory=list)
    checkouts: int = 0
    pace: str = ""
    """How fast the till rang up, and how much it held back (:meth:`Till.pace`)."""

    @staticmethod
    def times(takeovers: list[Takeover]) -> list[float]:
        return sorted(t.seconds for t in takeovers if t.seconds is not None)

    @staticmethod
    def missed(takeovers: list[Takeover]) -> int:
        return sum(1 for takeover in takeovers if takeover.seconds is None)

    @staticmethod
    def lanes(takeovers: list[Takeover]) -> tuple[list[float], int]:
        """Every orphaned lane's time (sorted), and how many lanes never committed again
        within the deadline."""
        values = [value for takeover in takeovers for value in takeover.lanes.values()]
        return sorted(v for v in values if v is not None), values.count(None)


class Fleet:
    """The live workers of a run."""

    def __init__(self, url: str, ttl: float) -> None:
        self.url = url
        self.ttl = ttl
        self.workers: dict[int, WorkerProcess] = {}

    def start(self) -> WorkerProcess:
        worker = WorkerProcess(self.url, self.ttl)
        self.workers[worker.pid] = worker
        return worker

    def settle(self, store: PostgresEventStore) -> None:
        """Until the live workers run every group, spread out (:func:`placed`)."""
        wait_until(
            lambda: placed(store, set(self.workers)),
            10 * self.ttl + 30,
            "every group placed on the workers",
            list(self.workers.values()),
        )

    def busiest(self, store: PostgresEventStore) -> tuple[WorkerProcess, dict[Lane, int]]:
        """The worker holding the most lanes, and the epochs of its leases."""
        leases = lanes_now(store)[0]
        held = held_by(store)
        pid = max(held, key=lambda owner: len(held[owner]))
        return self.workers[pid], {lane: leases[lane].epoch for lane in held[pid]}

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()


def _takeover(store: PostgresEventStore, fleet: Fleet, kind: Signal, ttl: float) -> Takeover:
    victim, orphaned = fleet.busiest(store)
    del fleet.workers[victim.pid]
    signalled = time.monotonic()
    if kind == "SIGKILL":
        victim.kill()
    else:
        victim.process.terminate()
    exited: list[float] = []

    def time_exit() -> None:
        victim.process.wait()
        exited.append(time.monotonic() - signalled)

    exiting = threading.Thread(target=time_exit, name="bench-exit", daemon=True)
    exiting.start()
    taken: dict[Lane, float] = {}
    deadline = signalled + 5 * ttl + 20
    lanes = watch_takeover(store, victim.pid, orphaned, signalled, deadline, taken)
    victim.stop()
    exiting.join()
    fleet.start()
    fleet.settle(store)
    return Takeover(kind, lanes, taken, exited[0] if exited else None)


def run_failover(
    cluster: PostgresCluster,
    kills: int,
    handovers: int,
    *,
    ttl: float = TTL,
    workers: int = WORKERS,
    most_behind: int = MOST_BEHIND,
    progress: Progress = lambda _: None,
) -> FailoverRun:
    """``kills`` SIGKILLs, then ``handovers`` SIGTERMs, on a fresh database of
    ``cluster`` (dropped afterwards)."""
    run = FailoverRun(ttl, workers)
    url = cluster.create_database()
    store = PostgresEventStore(url, lanes=LANES, registry=REGISTRY)
    fleet = Fleet(url, ttl)
    till = Till(store, most_behind)
    try:
        seed(store)
        for _ in range(workers):
            fleet.start()
        fleet.settle(store)
        till.start()
        for number in range(kills + handovers):
            kind: Signal = "SIGKILL" if number < kills else "SIGTERM"
            takeover = _takeover(store, fleet, kind, ttl)
            (run.kills if kind == "SIGKILL" else run.handovers).append(takeover)
            shown = "missed" if takeover.seconds is None else f"{takeover.seconds:.2f} s"
            inventory, report = behind(store)
            progress(
                f"failover {number + 1}/{kills + handovers}: {kind}, {shown}; behind: "
                f"Inventory {inventory:,}, the report {report:,}; load {os.getloadavg()[0]:.1f}"
            )
        run.checkouts = till.stop()
        run.pace = till.pace()
        caught_up(store, list(fleet.workers.values()), stall_seconds=60.0)
        problems = verify(store, run.checkouts)
        if problems:
            run.status, run.detail = "wrong", "; ".join(problems[:3])
    except RunFailed as failure:
        run.status, run.detail = failure.status, str(failure)
    except Exception as error:
        run.status, run.detail = "failed", f"{type(error).__name__}: {error}"
    finally:
        till.halt()
        fleet.close()
        store.close()
        cluster.drop_database(url)
    return run


def distribution(values: list[float]) -> str:
    if not values:
        return "none"
    quantiles = [
        ("min", values[0]),
        ("median", statistics.median(values)),
        ("p90", percentile(values, 0.9)),
        ("p99", percentile(values, 0.99)),
        ("max", values[-1]),
    ]
    return " / ".join(f"{name} {value:.2f}" for name, value in quantiles) + " s"


def lanes_summary(takeovers: list[Takeover], limit: float, ttl: float) -> str:
    """The figures of every orphaned lane of ``takeovers`` against ``limit``."""
    times, missed = FailoverRun.lanes(takeovers)
    within = sum(1 for value in times if value <= limit)
    taken = sorted(value for takeover in takeovers for value in takeover.taken.values())
    first = sorted(
        committed - takeover.taken[lane]
        for takeover in takeovers
        for lane, committed in takeover.lanes.items()
        if committed is not None and lane in takeover.taken
    )
    return (
        f"per lane: {distribution(times)}, {within} of {len(times) + missed} within "
        f"{limit:g} s, {missed} not within {5 * ttl + 20:g} s; of which the lease taken "
        f"over: {distribution(taken)}, then the new owner's first commit: "
        f"{distribution(first)}"
    )


def _results(run: FailoverRun, kills: int, handovers: int, load: str) -> list[CaseResult]:
    kill_limit = run.ttl + KILL_MARGIN
    kill_times, handover_times = run.times(run.kills), run.times(run.handovers)
    missed_kills, missed_handovers = run.missed(run.kills), run.missed(run.handovers)
    data = {
        "ttl": run.ttl,
        "status": run.status,
        "detail": run.detail,
        "checkouts": run.checkouts,
        "kills": [
            {f"{group}/{lane}": value for (group, lane), value in takeover.lanes.items()}
            for takeover in run.kills
        ],
        "handovers": [
            {f"{group}/{lane}": value for (group, lane), value in takeover.lanes.items()}
            for takeover in run.handovers
        ],
    }
    per_lane = lanes_summary(run.kills, kill_limit, run.ttl)
    handover_lanes = lanes_summary(run.handovers, HANDOVER_TARGET, run.ttl)
    common = f"{run.workers} workers, {LANES} lanes, lease TTL {run.ttl:g} s; {load}"
    if run.status != "ok":
        notes = (
            f"{run.status.upper()}: {run.detail}; kills: {distribution(kill_times)}, "
            f"{missed_kills} missed; {per_lane}; {common}"
        )
        return [
            CaseResult("18 failover, SIGKILL", "NOT MEASURED", "—", None, "—", False, notes, data),
            CaseResult("19 hand-over, SIGTERM", "NOT MEASURED", "—", None, "—", False, notes),
        ]
    p99 = percentile(kill_times, 0.99) if kill_times else float("inf")
    kill_result = CaseResult(
        case=f"18 failover, {len(run.kills)} SIGKILLs",
        tillflow=f"p99 {p99:.2f} s" if kill_times else "none in time",
        reference=f"TTL + {KILL_MARGIN:g} s = {kill_limit:g} s",
        ratio=p99 / kill_limit if kill_times else None,
        target=f"p99 ≤ TTL + {KILL_MARGIN:g} s over ≥ {MIN_KILLS} kills",
        passed=kills >= MIN_KILLS and not missed_kills and p99 <= kill_limit,
        notes=(
            f"until every lane the killed worker held committed again under another lease: "
            f"{distribution(kill_times)}; {missed_kills} missed; {per_lane}; {common}; the "
            f"report verified after {run.checkouts:,} checkouts; {run.pace}"
        ),
        data=data,
    )
    exits = sorted(t.exited for t in run.handovers if t.exited is not None)
    most = handover_times[-1] if handover_times else float("inf")
    median = statistics.median(handover_times) if handover_times else float("inf")
    figure = f"median {median:.2f} s, max {most:.2f} s" if handover_times else "none in time"
    handover_result = CaseResult(
        case=f"19 hand-over, {len(run.handovers)} SIGTERMs",
        tillflow=figure,
        reference=f"{HANDOVER_TARGET:g} s",
        ratio=most / HANDOVER_TARGET if handover_times else None,
        target=f"≤ {HANDOVER_TARGET:g} s",
        passed=handovers > 0 and not missed_handovers and most <= HANDOVER_TARGET,
        notes=(
            f"from SIGTERM until every lane it held committed under another lease: "
            f"{distribution(handover_times)}; {missed_handovers} missed; {handover_lanes}; "
            f"the worker exited after {distribution(exits)}; {common}"
        ),
    )
    return [kill_result, handover_result]


def failover_case(context: Context) -> list[CaseResult]:
    """Cases 18 and 19: one run of ``failover_kills`` SIGKILLs and ``failover_handovers``
    SIGTERMs (a distribution, not medians of repeats)."""
    sizes = context.sizes
    with bench_cluster() as (cluster, _):
        run = run_failover(
            cluster, sizes.failover_kills, sizes.failover_handovers, progress=context.progress
        )
    return _results(
        run, sizes.failover_kills, sizes.failover_handovers, f"load {os.getloadavg()[0]:.1f}"
    )


FAILOVER_CASES: Final = [failover_case]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--kills", type=int, default=MIN_KILLS)
    parser.add_argument("--handovers", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=TTL, help="the workers' --lease-ttl")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument(
        "--most-behind",
        type=int,
        default=MOST_BEHIND,
        help="positions the workers may be behind before the till holds back",
    )
    options = parser.parse_args()
    say: Callable[[str], None] = lambda message: print(f"… {message}", file=sys.stderr)  # noqa: E731
    with bench_cluster() as (cluster, shown):
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
        print("server: " + ", ".join(f"{name}={value}" for name, value in shown.items()))
        run = run_failover(
            cluster,
            options.kills,
            options.handovers,
            ttl=options.ttl,
            workers=options.workers,
            most_behind=options.most_behind,
            progress=say,
        )
    for result in _results(run, options.kills, options.handovers, f"load {os.getloadavg()}"):
        verdict = "PASS" if result.passed else "FAIL"
        print(f"{result.case}: {result.tillflow} (target {result.target}) {verdict}")
        print(f"  {result.notes}")


if __name__ == "__main__":
    main()
