"""The shop end to end on PostgreSQL against the ``eventsourcing`` library on the same
server (case 17 of ``python -m bench``, ``--only postgres``; alone:
``python -m bench.postgres_shop``).

Starts its own PostgreSQL cluster as the tests do (:mod:`tests.postgres_cluster`,
``synchronous_commit`` and ``fsync`` on), prints its settings, then per repeat, each side on
a fresh database of that cluster, the order alternating:

- **tillflow**: the point-of-sale workload (:mod:`bench.pos`) on a
  :class:`PostgresEventStore` of 16 lanes. The catalog and the opening stock are seeded,
  two real ``tillflow worker`` processes share the lanes of Inventory and the report (behind
  its barrier) by leases; once they hold every lane and the report has taken in the seeding,
  the clock starts: ``tills`` threads ring up the checkouts with ``checkout_many`` (batches
  of ``batch``; the store's group commit merges them per lane), and the clock stops when
  every lane's Inventory and report checkpoints have reached its head, read in one snapshot.
  Then, untimed: the consistent-cut audit and the report against :func:`bench.pos.truth`.
- **the peer**: the same workload on the library's PostgreSQL persistence
  (:mod:`bench.peer`), under each of its runners; the fastest is the reference.

CPU seconds per checkout are kept per process (the tills', each worker's, the server's):
where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

import psutil
from tests.postgres_cluster import PostgresCluster, running_cluster

from bench.cases import Context, Progress
from bench.peer import PeerRun, RunnerName, run_peer
from bench.pos import PosReport, violations, workload
from bench.pos import truth as pos_truth
from bench.postgres_lanes import SETTINGS, SHOWN
from bench.report import CaseResult, rate
from bench.shop import BASKETS, INVENTORY, REPORTING, STARTING_STOCK, final_report
from tillflow.engine import format_id, new_event_id
from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop, shop_processors
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.reporting.audit import ConsistentCutAudit
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.sale.commands import Checkout

LANES: Final = 16
WORKERS: Final = 2
TILLS: Final = 8
"""Till threads ringing up checkouts at once."""
BATCH: Final = 250
"""Checkouts per ``checkout_many`` call."""
LEASE_TTL: Final = 10.0
"""The workers' lease TTL (``tillflow worker``'s default)."""
PEER_RUNNERS: Final[tuple[RunnerName, ...]] = ("single", "multi", "new-multi")
THROUGHPUT_TARGET: Final = 5_000.0
PEER_TARGET: Final = 100.0
GROUPS: Final = (INVENTORY, REPORTING)
PROCESSORS: Final = {processor.name: processor for processor in shop_processors()}
"""Every processor group the workers run (``tillflow worker`` runs them all)."""
POLL: Final = 0.02
"""Seconds between two looks at the checkpoints while the report catches up (each look is
three statements on the server the shop is using: not much more often)."""

Status = Literal["ok", "wrong", "stalled", "failed"]


class RunFailed(Exception):
    """A run could not be completed (a worker died, a till was refused, a stall)."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# -- the pieces: workers, the server's CPU, the state of the lanes -------------------------


class WorkerProcess:
    """One ``tillflow worker --database URL --lease-ttl TTL`` process; its stderr kept in
    a temporary file for the report of a failure."""

    def __init__(self, url: str, ttl: float) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop)
        command = [sys.executable, "-m", "tillflow", "worker", "--database", url]
        command += ["--lease-ttl", str(ttl)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log)
        self.pid = self.process.pid
        self.watched = psutil.Process(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float:
        """CPU seconds so far (0 once reaped)."""
        with contextlib.suppress(psutil.Error):
            times = self.watched.cpu_times()
            return times.user + times.system
        return 0.0

    def tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-600:].strip()

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.alive():
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (hand the leases over), then SIGKILL after ``timeout``."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def server_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of the server's processes now running (the postmaster and its children:
    backends, WAL writer, checkpointer); a backend that ended took its share with it."""
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    seconds = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds += times.user + times.system
    return seconds


def pid_of(owner: str | None) -> int | None:
    """The pid in a worker id (``host:pid:random``)."""
    if owner is None:
        return None
    return int(owner.split(":")[1])


def placement(store: PostgresEventStore) -> dict[int, dict[str, int]]:
    """Per worker (pid), the groups it holds lanes of, with how many."""
    found: dict[int, dict[str, int]] = {}
    for row in store.leases.rows():
        pid = pid_of(row.owner)
        if row.held and pid is not None:
            groups = found.setdefault(pid, {})
            groups[row.processor] = groups.get(row.processor, 0) + 1
    return found


def placed(store: PostgresEventStore, pids: set[int]) -> bool:
    """Every group of the shop run whole by one of ``pids``, spread out as the workers
    settle it (:mod:`tillflow.engine.leasing`): no holder's load (the summed ``weight`` of
    its groups) exceeds another's by more than a group of its own weighs, else it would
    still hand that group over. A run timed before that would time a hand-over too."""
    held = placement(store)  # one read: the checks below judge the same moment
    holders = {
        group: [pid for pid, groups in held.items() if group in groups] for group in PROCESSORS
    }
    if set(held) - pids or any(
        len(found) != 1 or held[found[0]][group] != store.lane_count
        for group, found in holders.items()
    ):
        return False
    load = {pid: sum(PROCESSORS[group].weight for group in held.get(pid, {})) for pid in pids}
    return len(pids) < 2 or all(
        load[pid] - min(load[other] for other in pids if other != pid) <= PROCESSORS[group].weight
        for group, [pid] in holders.items()
    )


def behind(store: PostgresEventStore) -> tuple[int, int]:
    """Positions Inventory and the report still have to pass, over every lane, read in one
    snapshot: (0, 0) once both have reached every head (nothing more will be appended
    once the tills have stopped: Inventory's effects commit with its checkpoint)."""
    with store.snapshot():
        heads = store.heads()
        checkpoints = store.checkpoints()
    inventory, report = (
        sum(head - checkpoints.get(group, {}).get(lane, 0) for lane, head in heads.items())
        for group in GROUPS
    )
    return inventory, report


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    workers: Sequence[WorkerProcess] = (),
    interval: float = 0.05,
) -> float:
    """Seconds until ``condition`` held; :class:`RunFailed` after ``timeout`` or when a
    worker has died."""
    started = time.monotonic()
    while not condition():
        for worker in workers:
            if not worker.alive():
                raise RunFailed("failed", f"worker {worker.pid} died: {worker.tail()}")
        if time.monotonic() - started > timeout:
            raise RunFailed("stalled", f"{what}: not in {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - started


def seed(store: PostgresEventStore) -> None:
    """The workload's catalog, then a delivery of the opening stock per product (different
    streams, in parallel: their commits are shared)."""
    shop = Shop(store)
    products = workload().products
    for product in products:
        shop.sale.add_product(product)
    deliveries = [
        ReceiveStock(product.product_id, STARTING_STOCK, f"opening-{product.product_id}")
        for product in products
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(shop.inventory.receive, deliveries))


# -- tillflow's run ------------------------------------------------------------------------


@dataclass
class ShopRun:
    """One run of the shop on PostgreSQL. Only an ``ok`` run's figures mean anything."""

    status: Status = "ok"
    detail: str = ""
    checkouts: int = 0
    seconds: float = 0.0
    """From the first checkout until every lane's report has passed its head."""
    append_seconds: float = 0.0
    """Of which the tills took to have every checkout acknowledged."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds while timed: ``tills`` (this process), ``worker 1``…, ``server``."""
    writer: dict[str, int] = field(default_factory=dict)
    """The tills' lane writers while timed: ``batches`` (transactions), ``jobs``."""
    placement: dict[str, list[str]] = field(default_factory=dict)
    """The groups each worker ran (``worker 1``…)."""

    @property
    def rate(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0

    def cpu_per_checkout(self) -> dict[str, float]:
        """Microseconds of CPU per checkout, per process."""
        count = max(self.checkouts, 1)
        return {name: seconds * 1e6 / count for name, seconds in self.cpu.items()}


def _ring_up(store: PostgresEventStore, numbers: range, batch: int, till: str) -> None:
    """One till: checkouts ``numbers`` (checkout *n* rings up basket *n* mod 1024) in calls
    of ``batch``; a refusal fails the run."""
    shop = Shop(store)
    baskets = workload().baskets
    for start in range(0, len(numbers), batch):
        chunk = numbers[start : start + batch]
        commands = [
            Checkout(format_id(new_event_id()), till, baskets[number % BASKETS].lines)
            for number in chunk
        ]
        for command, outcome in zip(commands, shop.sale.checkout_many(commands), strict=True):
            if isinstance(outcome, Exception):
                raise RunFailed("failed", f"checkout {command.checkout_id}: {outcome!r}")


def _tills(store: PostgresEventStore, checkouts: int, tills: int, batch: int) -> None:
    """``tills`` threads ringing up checkouts 0 … ``checkouts - 1`` between them."""
    errors: list[BaseException] = []

    def till(number: int) -> None:
        try:
            _ring_up(store, range(number, checkouts, tills), batch, f"till-{number:02d}")
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=till, args=(number,), name=f"bench-till-{number}")
        for number in range(tills)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        error = errors[0]
        if isinstance(error, RunFailed):
            raise error
        raise RunFailed("failed", f"a till failed: {type(error).__name__}: {error}")


def caught_up(
    store: PostgresEventStore, workers: Sequence[WorkerProcess], stall_seconds: float
) -> None:
    """Until both groups have passed every head; :class:`RunFailed` when a worker dies
    or neither moves for ``stall_seconds``."""
    last = behind(store)
    moved = time.monotonic()
    while last != (0, 0):
        for worker in workers:
            if not worker.alive():
                raise RunFailed("failed", f"worker {worker.pid} died: {worker.tail()}")
        time.sleep(POLL)
        now = behind(store)
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall_seconds:
            raise RunFailed(
                "stalled",
                f"no progress for {stall_seconds:g} s: Inventory {now[0]:,} and the report "
                f"{now[1]:,} positions behind",
            )


def verify(store: PostgresEventStore, checkouts: int) -> list[str]:
    """The consistent-cut audit, then the report against the workload's truth."""
    problems = [f"audit: {problem}" for problem in ConsistentCutAudit(REPORT_VIEWS)(store)]
    report = PosReport.from_data(final_report(store))
    problems += [f"truth: {problem}" for problem in violations(report, pos_truth(checkouts))]
    return problems


def run_tillflow(
    cluster: PostgresCluster,
    checkouts: int,
    *,
    tills: int = TILLS,
    batch: int = BATCH,
    workers: int = WORKERS,
    ttl: float = LEASE_TTL,
    stall_seconds: float = 30.0,
    progress: Progress = lambda _: None,
) -> ShopRun:
    """One run on a fresh database of ``cluster`` (dropped afterwards)."""
    run = ShopRun()
    url = cluster.create_database()
    started_workers: list[WorkerProcess] = []
    store = PostgresEventStore(
        url, lanes=LANES, registry=REGISTRY, max_connections=LANES + tills + 4
    )
    try:
        seed(store)
        started_workers = [WorkerProcess(url, ttl) for _ in range(workers)]
        pids = {worker.pid for worker in started_workers}
        wait_until(lambda: placed(store, pids), 60.0, "the groups placed", started_workers)
        numbers = {worker.pid: number for number, worker in enumerate(started_workers, 1)}
        run.placement = {
            f"worker {numbers[pid]}": sorted(groups) for pid, groups in placement(store).items()
        }
        wait_until(lambda: behind(store) == (0, 0), 60.0, "the seeding", started_workers)
        progress(f"tillflow on PostgreSQL: {checkouts:,} checkouts, {tills} tills")
        cpu_before = _cpu(cluster, started_workers)
        writer_before = store.writer_statistics()
        began = time.perf_counter()
        _tills(store, checkouts, tills, batch)
        run.append_seconds = time.perf_counter() - began
        caught_up(store, started_workers, stall_seconds)
        run.seconds = time.perf_counter() - began
        run.checkouts = checkouts
        run.cpu = {
            name: seconds - cpu_before.get(name, 0.0)
            for name, seconds in _cpu(cluster, started_workers).items()
        }
        run.writer = {
            name: value - writer_before.get(name, 0)
            for name, value in store.writer_statistics().items()
        }
        problems = verify(store, checkouts)
        if problems:
            run.status, run.detail = "wrong", "; ".join(problems[:3])
    except RunFailed as failure:
        run.status, run.detail = failure.status, str(failure)
    except Exception as error:
        run.status, run.detail = "failed", f"{type(error).__name__}: {error}"
    finally:
        for worker in started_workers:
            worker.stop()
        store.close()
        cluster.drop_database(url)
    return run


def _cpu(cluster: PostgresCluster, workers: Sequence[WorkerProcess]) -> dict[str, float]:
    times = psutil.Process().cpu_times()
    seconds = {"tills": times.user + times.system, "server": server_cpu(cluster)}
    for number, worker in enumerate(workers, 1):
        seconds[f"worker {number}"] = worker.cpu()
    return seconds


def run_peer_on(
    cluster: PostgresCluster,
    runner: RunnerName,
    checkouts: int,
    stall_seconds: float = 30.0,
    progress: Progress = lambda _: None,
) -> PeerRun:
    """One run of the peer on a fresh database of ``cluster`` (dropped afterwards)."""
    url = cluster.create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="tillflow-peer-") as directory:
            return run_peer(
                Path(directory),
                "postgres",
                runner,
                checkouts,
                stall_seconds=stall_seconds,
                progress=progress,
                postgres_url=url,
            )
    finally:
        cluster.drop_database(url)


@contextlib.contextmanager
def bench_cluster() -> Iterator[tuple[PostgresCluster, dict[str, str]]]:
    """The benchmark's own cluster (``synchronous_commit`` and ``fsync`` on) and the
    settings it runs with."""
    with running_cluster({**SETTINGS, "fsync": "on"}) as cluster:
        yield cluster, {name: cluster.setting(name) for name in SHOWN}


# -- the case ------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Every repeat of both sides."""

    ours: list[ShopRun] = field(default_factory=list)
    theirs: dict[RunnerName, list[PeerRun]] = field(default_factory=dict)

    def problem(self) -> str | None:
        """The first run that was not ``ok`` (either side), described."""
        for run in self.ours:
            if run.status != "ok":
                return f"tillflow {run.status.upper()}: {run.detail}"
        for runner, runs in self.theirs.items():
            for peer in runs:
                if peer.status != "ok":
                    return f"eventsourcing {runner} {peer.status.upper()}: {peer.detail}"
        return None

    def rate(self) -> float:
        return statistics.median(run.rate for run in self.ours)

    def peer_rates(self) -> dict[RunnerName, float]:
        return {
            runner: statistics.median(run.rate for run in runs)
            for runner, runs in self.theirs.items()
        }


def compare(
    cluster: PostgresCluster,
    checkouts: int,
    peer_checkouts: int,
    repeats: int,
    progress: Progress,
    *,
    tills: int = TILLS,
    runners: Sequence[RunnerName] = PEER_RUNNERS,
) -> Comparison:
    """``repeats`` rounds of tillflow and the peer's runners, the order reversed every
    other round."""
    done = Comparison(theirs={runner: [] for runner in runners})
    for repeat in range(repeats):
        sides: list[RunnerName | None] = [None, *runners]
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            progress(f"PostgreSQL shop, run {repeat + 1}/{repeats}: {side or 'tillflow'}")
            if side is None:
                done.ours.append(run_tillflow(cluster, checkouts, tills=tills, progress=progress))
            else:
                done.theirs[side].append(run_peer_on(cluster, side, peer_checkouts))
    return done


def _cpu_notes(run: ShopRun) -> str:
    parts = sorted(run.cpu_per_checkout().items(), key=lambda item: -item[1])
    cpu = "CPU µs/checkout: " + ", ".join(f"{name} {micros:.0f}" for name, micros in parts)
    placed = "; ".join(f"{name} {'+'.join(groups)}" for name, groups in run.placement.items())
    return f"{cpu} ({placed})" if placed else cpu


def shop_case(context: Context) -> CaseResult:
    """Case 17: the shop end to end on PostgreSQL, 2 workers, against the peer."""
    sizes = context.sizes
    with bench_cluster() as (cluster, shown):
        done = compare(
            cluster,
            sizes.postgres_shop_checkouts,
            sizes.postgres_peer_checkouts,
            context.repeats,
            context.progress,
        )
    case = f"17 shop on PostgreSQL, {WORKERS} workers"
    target = f"≥ {PEER_TARGET:g}× the peer, ≥ {rate(THROUGHPUT_TARGET, ' checkouts/s')}"
    data: dict[str, Any] = {
        "server": shown,
        "tillflow": [
            {
                "status": run.status,
                "detail": run.detail,
                "rate": run.rate,
                "append_seconds": run.append_seconds,
                "seconds": run.seconds,
                "cpu_us_per_checkout": run.cpu_per_checkout(),
                "writer": run.writer,
            }
            for run in done.ours
        ],
        "peer": {
            runner: [{"status": run.status, "detail": run.detail, "rate": run.rate} for run in runs]
            for runner, runs in done.theirs.items()
        },
    }
    problem = done.problem()
    if problem is not None:
        return CaseResult(case, "NOT TIMED", "—", None, target, False, problem, data)
    ours = done.rate()
    peers = done.peer_rates()
    best = max(peers, key=lambda runner: peers[runner])
    ratio = ours / peers[best]
    middle = sorted(done.ours, key=lambda run: run.rate)[len(done.ours) // 2]
    return CaseResult(
        case=case,
        tillflow=rate(ours, " checkouts/s"),
        reference=f"eventsourcing {best} {rate(peers[best], ' checkouts/s')}",
        ratio=ratio,
        target=target,
        passed=ratio >= PEER_TARGET and ours >= THROUGHPUT_TARGET,
        notes=(
            f"{sizes.postgres_shop_checkouts:,} checkouts per run from {TILLS} tills, "
            f"{LANES} lanes, verified (audit and truth); peer {sizes.postgres_peer_checkouts:,} "
            f"per run: "
            + ", ".join(f"{runner} {rate(value)}" for runner, value in peers.items())
            + f"; median run: appended in {middle.append_seconds:.1f} of {middle.seconds:.1f} s"
            f", {middle.writer.get('batches', 0)} till txns; {_cpu_notes(middle)}; server "
            f"{shown['server_version'].split()[0]}, fsync {shown['fsync']}, synchronous_commit "
            f"{shown['synchronous_commit']}; load {os.getloadavg()[0]:.1f}"
        ),
        data=data,
    )


POSTGRES_SHOP_CASES: Final = [shop_case]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_shop")
    parser.add_argument("--checkouts", type=int, default=30_000)
    parser.add_argument("--peer-checkouts", type=int, default=600)
    parser.add_argument("--tills", type=int, default=TILLS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--runner", choices=PEER_RUNNERS, action="append", help="the peer's runners (default all)"
    )
    parser.add_argument("--no-peer", action="store_true", help="tillflow only")
    options = parser.parse_args()
    runners: Sequence[RunnerName] = () if options.no_peer else (options.runner or PEER_RUNNERS)
    with bench_cluster() as (cluster, shown):
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
        print("server: " + ", ".join(f"{name}={value}" for name, value in shown.items()))
        done = compare(
            cluster,
            options.checkouts,
            options.peer_checkouts,
            options.repeats,
            lambda message: print(f"… {message}", file=sys.stderr),
            tills=options.tills,
            runners=runners,
        )
    for run in done.ours:
        print(
            f"tillflow: {run.status} {run.rate:,.0f} checkouts/s ({run.checkouts:,} in "
            f"{run.seconds:.2f} s, appended in {run.append_seconds:.2f} s); {_cpu_notes(run)}"
            + (f"; {run.detail}" if run.detail else "")
        )
    for runner, runs in done.theirs.items():
        for peer in runs:
            print(
                f"eventsourcing {runner}: {peer.status} {peer.rate:,.1f} checkouts/s {peer.detail}"
            )
    if done.problem() is None and done.ours:
        ours = done.rate()
        print(f"tillflow median: {ours:,.0f} checkouts/s")
        for runner, value in done.peer_rates().items():
            print(f"eventsourcing {runner} median: {value:,.1f} checkouts/s ({ours / value:,.0f}×)")
    print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
