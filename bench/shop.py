"""The shop side of the benchmark: the whole shop (Sale → Inventory → the report) on one
SQLite file with durability ``full``, driven by seeded tills and checked against the truth.

Every run opens a fresh :class:`SqliteEventStore` (with the shop's registry), starts
``Shop(store).runtime()`` (Inventory and the report behind its barrier), lets the tills seed
the catalog (200 products) and a generous opening stock (a delivery each), waits until the
report shows the seeding, and only then starts the clock. Afterwards, untimed:
``runtime.drain()``, then :class:`ConsistentCutAudit` over the report's views and
:class:`ShopTruth` (fed by the tills from the commands they issued) against the rows and
totals. A run that stalls, fails or disagrees with the truth says so and is never timed as a
success.

The tills (:class:`Tills`) append with ``SaleService.checkout_many`` in batches of
:data:`BATCH` checkouts, either in a thread of the shop's process (``one process``) or in a
separate OS process on the same file (``two processes``, :class:`ProcessTills`); the shop's
process then runs only the runtime. The tills keep at most ``window`` batches
(:data:`WINDOW`, 10,000 checkouts) ahead of the report (they read the report's durable
checkpoint before each batch), as a till network that never floods the shop unboundedly:
the pipeline stays full without the log running away from the processors, so a segment
late in a long run is measured under the same conditions as an early one.

The tills' own work is in the timed part, as a till's would be: building each command
(a fresh time-ordered id, a basket from a seeded pool) and counting what was accepted
(their thread's CPU is reported apart from the shop's). The truth is folded from those
counts once the timed part is over (:meth:`Tills.truth`).

Every process of a run (the shop's, the tills', the report's ``tillflow worker``) has the
garbage collector as ``tillflow serve`` and ``tillflow worker`` set it
(:mod:`tillflow.service.collector`): a deployed shop's processes are those commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import heapq
import math
import multiprocessing
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, Protocol, TypeVar

import psutil

from bench.paying import PaidCheckouts, tenders_for
from bench.probes import (
    CountingStore,
    Memory,
    cpu_spent,
    memory_now,
    process_tree_cpu,
    thread_cpu,
)
from tillflow.engine import (
    DrainTimeout,
    EventStore,
    MemoryEventStore,
    ProcessorStopped,
    Receipt,
    Runtime,
    SqliteEventStore,
    format_id,
    new_event_id,
)
from tillflow.service.collector import tune_collector
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.reporting.audit import ConsistentCutAudit, read_rows, read_totals
from tillflow.shop.reporting.projection import NAME as REPORTING_NAME
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth, expected_line
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.vat import DEFAULT_RATES

_Options = ParamSpec("_Options")
_Result = TypeVar("_Result")

PRODUCTS: Final = 200
RATES: Final = tuple(DEFAULT_RATES)
"""The products' rates, in turn: the default table's."""
STARTING_STOCK: Final = 1_000_000
"""Units delivered per product before the clock starts: far more than a million checkouts
take (≈ 30,000 units per product), so no sale goes short."""
BASKETS: Final = 1024
"""Distinct baskets (1–5 lines of distinct products, 1–3 units each), drawn once per seed
and reused in turn: the tills' own cost (and the objects they keep, which every full
garbage collection of the process walks) stays out of what is measured."""
TILLS: Final = 16
BATCH: Final = 2000
"""Checkouts per ``checkout_many`` call."""
WINDOW: Final = 5
"""Batches the tills may be ahead of the report."""
INVENTORY: Final = "inventory"
REPORTING: Final = REPORTING_NAME

Status = Literal["ok", "wrong", "stalled", "failed"]


class ProducerFailed(Exception):
    """The tills could not do what they were asked (a refusal, a crash, no answer)."""


# -- the workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class Basket:
    """What a till rings up, and what Sale must record for it (computed here from the
    catalog the tills created, not read back from the store: the truth is made of it)."""

    lines: list[LineRequest]
    recorded: CheckedOut


def catalogue(seed: int) -> list[AddProduct]:
    rng = random.Random(seed)
    return [
        AddProduct(
            f"p{number:03d}",
            f"Product {number:03d}",
            rng.randint(50, 5_000),
            tax_rate=RATES[number % len(RATES)],
        )
        for number in range(PRODUCTS)
    ]


def baskets(seed: int, products: Sequence[AddProduct]) -> list[Basket]:
    rng = random.Random(seed * 7_919 + 1)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    drawn = []
    for _ in range(BASKETS):
        chosen = rng.sample(list(products), rng.randint(1, 5))
        quantities = [rng.randint(1, 3) for _ in chosen]
        lines = [
            expected_line(
                product.product_id,
                product.name,
                product.price,
                quantity,
                product.tax_rate,
                DEFAULT_RATES[product.tax_rate],
            )
            for product, quantity in zip(chosen, quantities, strict=True)
        ]
        drawn.append(
            Basket(
                [
                    LineRequest(product.product_id, quantity)
                    for product, quantity in zip(chosen, quantities, strict=True)
                ],
                CheckedOut("basket", "till", at, lines, sum(line.line_total for line in lines)),
            )
        )
    return drawn


@dataclass(frozen=True)
class SegmentFacts:
    """What the tills report after each segment of a run."""

    checkouts: int
    position: int
    """The last position the segment's checkouts took in the log."""
    append_seconds: float
    """From the segment's first ``checkout_many`` call to its last one returning."""
    held_seconds: float
    """Of which the tills waited for the report (the window was full)."""
    transactions: int
    """Writer transactions of the tills' store during the segment (``one process``: every
    transaction of the shared store, the processors' included)."""


class Tills:
    """The cashiers: they seed the shop, ring up checkouts with ``checkout_many`` and count
    what was accepted, for the truth. Synchronous; one thread at a time."""

    def __init__(
        self,
        store: EventStore,
        seed: int,
        batch_size: int = BATCH,
        terminal: SimulatedTerminal | None = None,
    ) -> None:
        self.store = store
        self.shop = Shop(store) if terminal is None else Shop(store, terminal=terminal)
        self.products = catalogue(seed)
        self.baskets = baskets(seed, self.products)
        self.batch_size = batch_size
        self.opening = ShopTruth()
        """What the seeding received; the checkouts are added in :meth:`truth`."""
        self.accepted = [0] * BASKETS
        """Checkouts accepted, per basket (checkout ``n`` rings up basket ``n % BASKETS``)."""
        self.last_position = 0
        self.issued = 0

    def seed(self) -> int:
        """The catalog and a delivery per product; the last position written."""
        sale, inventory = self.shop.sale, self.shop.inventory
        position = 0
        for product in self.products:
            position = max(position, sale.add_product(product).positions[0])
        deliveries = [
            ReceiveStock(product.product_id, STARTING_STOCK, f"opening-{product.product_id}")
            for product in self.products
        ]
        with ThreadPoolExecutor(8) as pool:  # different streams: their commits are shared
            for receipt in pool.map(inventory.receive, deliveries):
                position = max(position, receipt.positions[0])
        for product in self.products:
            self.opening.received(product.product_id, STARTING_STOCK)
        return position

    def command(self, number: int) -> tuple[Checkout, CheckedOut]:
        """Checkout ``number`` (a time-ordered UUIDv7 id, as tills are advised to use)."""
        basket = self.baskets[number % BASKETS]
        command = Checkout(format_id(new_event_id()), f"till-{number % TILLS:02d}", basket.lines)
        return command, basket.recorded

    def record(self, number: int, outcome: object, checkout_id: str) -> int:
        """Count checkout ``number`` as accepted (a refusal fails the run); its position."""
        if not isinstance(outcome, Receipt):
            raise ProducerFailed(f"checkout {checkout_id} refused: {outcome!r}")
        self.accepted[number % BASKETS] += 1
        position = outcome.positions[0]
        self.last_position = max(self.last_position, position)
        return position

    def truth(self) -> ShopTruth:
        """The truth from what was issued and accepted: the opening stock, then each
        basket's recorded checkout times the number of times it was accepted (folded once
        at the end, so the tills spend nothing on it while timed)."""
        truth = ShopTruth()
        for product_id, product in self.opening.products.items():
            truth.received(product_id, product.received)
        for basket, times in zip(self.baskets, self.accepted, strict=True):
            truth.checked_out_times(basket.recorded, times, 0, self.last_position)
        return truth

    def gross(self) -> int:
        """Cents due for the checkouts accepted, from the baskets' totals."""
        return sum(
            basket.recorded.total * times
            for basket, times in zip(self.baskets, self.accepted, strict=True)
        )

    def checkout_many(self, count: int) -> int:
        """Ring up ``count`` checkouts in one call; the last position they took."""
        first = self.issued
        commands = [self.command(first + offset)[0] for offset in range(count)]
        self.issued += count
        outcomes = self.shop.sale.checkout_many(commands)
        position = 0
        for number, (command, outcome) in enumerate(zip(commands, outcomes, strict=True), first):
            position = max(position, self.record(number, outcome, command.checkout_id))
        return position

    def report_position(self) -> int:
        return self.store.checkpoint(REPORTING, 0)

    def run(
        self,
        count: int,
        segment: int,
        window: int | None,
        on_segment: Callable[[SegmentFacts], None],
        transactions: Callable[[], int],
    ) -> None:
        """Ring up ``count`` checkouts in batches, calling ``on_segment`` after every
        ``segment`` of them; never more than ``window`` batches ahead of the report."""
        issued = 0
        ahead: deque[int] = deque()
        while issued < count:
            started = time.perf_counter()
            committed = transactions()
            held = 0.0
            size = min(segment, count - issued)
            done = 0
            position = 0
            while done < size:
                if window is not None:
                    held += self._hold(ahead, window)
                batch = min(self.batch_size, size - done)
                position = self.checkout_many(batch)
                ahead.append(position)
                done += batch
            issued += size
            elapsed = time.perf_counter() - started
            facts = SegmentFacts(size, position, elapsed, held, transactions() - committed)
            on_segment(facts)

    def _hold(self, ahead: deque[int], window: int, timeout: float = 120.0) -> float:
        """Wait until fewer than ``window`` batches are unreflected; seconds waited."""
        started = time.perf_counter()
        while len(ahead) >= window:
            passed = self.report_position()
            while ahead and ahead[0] <= passed:
                ahead.popleft()
            if len(ahead) >= window:
                if time.perf_counter() - started > timeout:
                    raise ProducerFailed(
                        f"the report stayed at {passed} for {timeout:.0f}s, behind {ahead[0]}"
                    )
                time.sleep(0.001)
        return time.perf_counter() - started

    def violations(self) -> list[str]:
        """The report's rows and totals against the truth."""
        return self.truth().violations(
            read_rows(self.store, REPORT_VIEWS), read_totals(self.store, REPORT_VIEWS)
        )


# -- where the tills run -------------------------------------------------------------------


class TillsHandle(Protocol):
    """The tills as the shop's process drives them, wherever they run."""

    kind: str

    async def seed(self) -> int: ...

    def start(self, count: int, segment: int, window: int | None) -> None: ...

    async def next_segment(self, timeout: float) -> SegmentFacts: ...

    async def violations(self) -> list[str]: ...

    async def facts(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class ThreadTills:
    """The tills in a thread of the shop's own process (sharing its store)."""

    kind = "one process"

    def __init__(self, store: EventStore, seed: int, batch_size: int = BATCH) -> None:
        self.store = store
        self.tills = Tills(store, seed, batch_size)
        self._segments: asyncio.Queue[SegmentFacts | BaseException] = asyncio.Queue()
        self._thread: threading.Thread | None = None

    async def seed(self) -> int:
        return await asyncio.to_thread(self.tills.seed)

    def start(self, count: int, segment: int, window: int | None) -> None:
        loop = asyncio.get_running_loop()

        def put(item: SegmentFacts | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                loop.call_soon_threadsafe(self._segments.put_nowait, item)

        def work() -> None:
            try:
                self.tills.run(
                    count,
                    segment,
                    window,
                    put,
                    lambda: writer_statistics(self.store).get("batches", 0),
                )
            except BaseException as error:
                put(error)

        self._thread = threading.Thread(target=work, name="bench-tills", daemon=True)
        self._thread.start()

    async def next_segment(self, timeout: float) -> SegmentFacts:
        try:
            item = await asyncio.wait_for(self._segments.get(), timeout)
        except TimeoutError as error:
            raise ProducerFailed(f"no word from the tills in {timeout:.0f}s") from error
        if isinstance(item, BaseException):
            raise ProducerFailed(f"the tills failed: {type(item).__name__}: {item}") from item
        return item

    async def violations(self) -> list[str]:
        return await asyncio.to_thread(self.tills.violations)

    async def facts(self) -> dict[str, Any]:
        return {}  # the tills' figures are the shop process's

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60.0)


def writer_statistics(store: EventStore) -> dict[str, int]:
    """The SQLite writer's counters (``batches``: transactions); none for memory."""
    return store.writer_statistics() if isinstance(store, SqliteEventStore) else {}


def process_facts(store: EventStore) -> dict[str, Any]:
    """This process's memory, CPU by thread, writer statistics (and statements, counted)."""
    facts: dict[str, Any] = {
        "rss": memory_now().rss,
        "cpu": thread_cpu(),
        "writer": writer_statistics(store),
    }
    if isinstance(store, CountingStore):
        facts["statements"] = dict(store.statements)
    return facts


def tills_process(
    conn: Connection,
    path: str,
    seed: int,
    batch_size: int,
    store_type: type[SqliteEventStore] = SqliteEventStore,
) -> None:
    """The tills' process: answers the shop process's requests over ``conn``."""
    threading.current_thread().name = "bench-tills"
    tune_collector()
    store = store_type(path, durability="full", registry=REGISTRY)
    tills = Tills(store, seed, batch_size)

    def transactions() -> int:
        return store.writer_statistics()["batches"]

    try:
        while True:
            try:
                request, *arguments = conn.recv()
            except EOFError:
                return
            try:
                if request == "seed":
                    conn.send(("ok", tills.seed()))
                elif request == "run":
                    count, segment, window = arguments
                    tills.run(
                        count, segment, window, lambda f: conn.send(("segment", f)), transactions
                    )
                elif request == "violations":
                    conn.send(("ok", tills.violations()))
                elif request == "facts":
                    conn.send(("ok", process_facts(store)))
                else:
                    conn.send(("ok", None))
                    return
            except Exception:
                conn.send(("error", traceback.format_exc(limit=6)))
    finally:
        store.close()


class ProcessTills:
    """The tills in a separate OS process (``spawn``) appending to the same file."""

    kind = "two processes"

    def __init__(
        self,
        path: Path,
        seed: int,
        batch_size: int = BATCH,
        store_type: type[SqliteEventStore] = SqliteEventStore,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.process = context.Process(
            target=tills_process,
            args=(theirs, str(path), seed, batch_size, store_type),
            name="bench-tills",
            daemon=True,
        )
        self.process.start()
        theirs.close()

    def _receive(self, timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.2):
            if not self.process.is_alive():
                raise ProducerFailed(f"the tills' process died (exit {self.process.exitcode})")
            if time.monotonic() > deadline:
                raise ProducerFailed(f"no word from the tills' process in {timeout:.0f}s")
        try:
            kind, value = self._conn.recv()
        except EOFError as error:
            raise ProducerFailed("the tills' process hung up") from error
        if kind == "error":
            raise ProducerFailed(f"the tills' process failed: {value}")
        return kind, value

    async def _ask(self, *request: Any, timeout: float = 120.0) -> Any:
        self._conn.send(request)
        _, value = await asyncio.to_thread(self._receive, timeout)
        return value

    async def seed(self) -> int:
        position: int = await self._ask("seed")
        return position

    def start(self, count: int, segment: int, window: int | None) -> None:
        self._conn.send(("run", count, segment, window))

    async def next_segment(self, timeout: float) -> SegmentFacts:
        kind, value = await asyncio.to_thread(self._receive, timeout)
        if kind != "segment" or not isinstance(value, SegmentFacts):
            raise ProducerFailed(f"the tills' process said {kind} {value!r}")
        return value

    async def violations(self) -> list[str]:
        found: list[str] = await self._ask("violations")
        return found

    async def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = await self._ask("facts")
        return facts

    async def close(self) -> None:
        with contextlib.suppress(OSError, ProducerFailed):
            if self.process.is_alive():
                await self._ask("stop", timeout=10.0)
        await asyncio.to_thread(self.process.join, 10.0)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5.0)
        self._conn.close()


# -- one run: throughput, segments, memory -------------------------------------------------


@dataclass(frozen=True)
class Segment:
    tills: SegmentFacts
    seconds: float
    """From the moment the previous segment was in the report (or the start) until this
    segment's last checkout is."""
    memory: Memory
    cpu: float
    """CPU seconds the shop's processes (this one, the tills', the report's) spent in the
    same span."""

    @property
    def rate(self) -> float:
        return self.tills.checkouts / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_checkout(self) -> float:
        """CPU µs per checkout of the segment, every process of the shop together."""
        return self.cpu / self.tills.checkouts * 1e6 if self.tills.checkouts else 0.0


@dataclass
class ShopRun:
    """One run of the shop. Only an ``ok`` run's figures mean anything."""

    tills: str
    status: Status = "ok"
    detail: str = ""
    segments: list[Segment] = field(default_factory=list)
    events: int = 0
    """Events the log gained while timed: checkouts and Inventory's effects."""
    processors: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per processor, during the timed part: ``batches`` (transactions), ``scanned``,
    ``handled``."""
    writer: dict[str, int] = field(default_factory=dict)
    """The shop process's store writer during the timed part: ``batches`` (transactions),
    ``jobs``."""
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU seconds spent while timed, per process (``shop``, ``tills``) and thread role."""
    statements: dict[str, dict[str, int]] = field(default_factory=dict)
    """With a :class:`CountingStore`: statements run while timed, per process, as
    ``"role: kind"`` → count."""
    start_memory: Memory | None = None
    tills_rss: int = 0
    tills_writer: dict[str, int] = field(default_factory=dict)
    """The tills' process's store writer while timed (like ``writer``)."""
    report: dict[str, Any] = field(default_factory=dict)
    """The report at the end (:func:`final_report`), for checks beyond :func:`verify`."""

    @property
    def checkouts(self) -> int:
        return sum(segment.tills.checkouts for segment in self.segments)

    @property
    def seconds(self) -> float:
        return sum(segment.seconds for segment in self.segments)

    @property
    def rate(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0

    @property
    def tills_transactions(self) -> int:
        return sum(segment.tills.transactions for segment in self.segments)

    def cpu_per_checkout(self) -> dict[str, dict[str, float]]:
        """Microseconds of CPU per checkout, per process and thread role."""
        count = max(self.checkouts, 1)
        return {
            process: {name: seconds * 1e6 / count for name, seconds in roles.items()}
            for process, roles in self.cpu.items()
        }


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _at(position: int) -> Receipt:
    return Receipt(positions={0: position}, streams={})


def _counters(runtime: Runtime) -> dict[str, dict[str, int]]:
    return {
        stats.processor: {
            "batches": stats.batches,
            "scanned": stats.scanned,
            "handled": stats.handled,
        }
        for stats in runtime.statistics()
    }


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: value - before.get(name, 0) for name, value in after.items()}


def _statements(after: dict[tuple[str, str], int], before: dict[tuple[str, str], int]) -> Any:
    return {
        f"{who}: {kind}": count - before.get((who, kind), 0)
        for (who, kind), count in sorted(after.items())
        if count > before.get((who, kind), 0)
    }


async def _settle_seeding(runtime: Runtime, seeded: int) -> None:
    outcome = await runtime.wait_for(_at(seeded), [REPORTING], timeout=60.0)
    if not outcome.reached:
        raise ProducerFailed(f"the report did not take in the seeding: {outcome}")
    await runtime.drain(timeout=60.0)


def final_report(store: EventStore) -> dict[str, Any]:
    """The report's figures in plain data: ``products`` (id → units sold, revenue, stock
    left), ``checkouts``, ``revenue`` (the shape of :class:`bench.pos.PosReport`)."""
    with store.snapshot():
        rows = read_rows(store, REPORT_VIEWS)
        totals = read_totals(store, REPORT_VIEWS)
    return {
        "products": {row.product_id: [row.units_sold, row.revenue, row.stock_left] for row in rows},
        "checkouts": totals.checkouts,
        "revenue": totals.revenue,
    }


def audited(store: EventStore) -> list[str]:
    """The consistent-cut audit of the report's views (empty: it holds)."""
    return [f"audit: {problem}" for problem in ConsistentCutAudit(REPORT_VIEWS)(store)]


async def verify(store: EventStore, tills: TillsHandle) -> list[str]:
    """The consistent-cut audit of the report, then the truth (empty: all true)."""
    return audited(store) + [f"truth: {problem}" for problem in await tills.violations()]


def ended_by(error: Exception) -> tuple[Status, str]:
    """A run's status and detail when ``error`` ended it (a drain that timed out: stalled)."""
    if isinstance(error, DrainTimeout):
        return "stalled", str(error)
    if isinstance(error, ProcessorStopped):
        return "failed", str(error)
    return "failed", _describe(error)


def judged(problems: list[str]) -> tuple[Status, str]:
    """A verified run's status and detail: ``ok``, or ``wrong`` naming the first problems."""
    if not problems:
        return "ok", ""
    return "wrong", f"{len(problems)} problems: " + "; ".join(problems[:3])


class ReportingWorker:
    """The report's processor in its own OS process, deployed as an operator would:
    ``tillflow worker --run reporting`` on the shop's file. Stopped with SIGTERM."""

    def __init__(self, path: Path) -> None:
        command = [sys.executable, "-m", "tillflow", "worker", "--run", REPORTING]
        command += ["--database", str(path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self.watched = psutil.Process(self.process.pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of the worker process so far (``all``: it is one role)."""
        times = self.watched.cpu_times()
        return {"all": times.user + times.system}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Timed:
    """The shop process's and the tills' counters at the start of the timed part."""

    def __init__(
        self,
        store: EventStore,
        runtime: Runtime,
        tills: dict[str, Any],
        apart: ReportingWorker | None,
    ) -> None:
        self.apart = apart
        self.apart_cpu = apart.cpu() if apart is not None else {}
        self.head = store.head(0)
        self.processors = _counters(runtime)
        self.writer = writer_statistics(store)
        self.cpu = thread_cpu()
        self.statements = dict(store.statements) if isinstance(store, CountingStore) else {}
        self.tills = tills

    def finish(
        self, run: ShopRun, store: EventStore, runtime: Runtime, tills: dict[str, Any]
    ) -> None:
        run.cpu["shop"] = cpu_spent(self.cpu, thread_cpu())
        if self.apart is not None:
            run.cpu["reporting"] = cpu_spent(self.apart_cpu, self.apart.cpu())
        run.events = store.head(0) - self.head
        run.processors = {
            name: _minus(values, self.processors.get(name, {}))
            for name, values in _counters(runtime).items()
        }
        run.writer = _minus(writer_statistics(store), self.writer)
        if isinstance(store, CountingStore):
            run.statements["shop"] = _statements(dict(store.statements), self.statements)
        if tills:
            run.cpu["tills"] = cpu_spent(self.tills["cpu"], tills["cpu"])
            run.tills_rss = tills["rss"]
            run.tills_writer = _minus(tills["writer"], self.tills["writer"])
            if "statements" in tills:
                run.statements["tills"] = _statements(tills["statements"], self.tills["statements"])


def _place(
    path: Path,
    seed: int,
    batch_size: int,
    store_type: type[SqliteEventStore],
    memory: bool,
    separate: bool,
    reporting_apart: bool,
) -> tuple[EventStore, TillsHandle, ReportingWorker | None]:
    """The shop's store, its tills and (if apart) the report's own process."""
    if memory and separate:
        raise ValueError("a memory store cannot be shared with a 2nd process")
    if reporting_apart and not separate:
        raise ValueError("the report's own process goes with the tills in theirs")
    store: EventStore = (
        MemoryEventStore(registry=REGISTRY)
        if memory
        else store_type(path, durability="full", registry=REGISTRY)
    )
    tills: TillsHandle = (
        ProcessTills(path, seed, batch_size, store_type)
        if separate
        else ThreadTills(store, seed, batch_size)
    )
    return store, tills, ReportingWorker(path) if reporting_apart else None


def with_tuned_collector(
    run: Callable[_Options, Coroutine[Any, Any, _Result]],
) -> Callable[_Options, Coroutine[Any, Any, _Result]]:
    """Run ``run`` with the collector as ``tillflow serve`` and ``tillflow worker`` set it
    (:func:`tillflow.service.collector.tune_collector`), as the processes of a deployed shop run;
    the process's own setting back afterwards (the harness measures other things next)."""

    @functools.wraps(run)
    async def tuned(*args: _Options.args, **kwargs: _Options.kwargs) -> _Result:
        before = gc.get_threshold()
        tune_collector()
        try:
            return await run(*args, **kwargs)
        finally:
            gc.set_threshold(*before)

    return tuned


@with_tuned_collector
async def run_shop(
    path: Path,
    checkouts: int,
    *,
    separate: bool,
    segments: int = 1,
    seed: int = 1,
    batch_size: int = BATCH,
    window: int | None = WINDOW,
    timeout: float | None = None,
    store_type: type[SqliteEventStore] = SqliteEventStore,
    memory: bool = False,
    on_segment: Callable[[int, int], None] | None = None,
    reporting_apart: bool = False,
) -> ShopRun:
    """Seed the shop, then time ``checkouts`` checkouts from the first append until the
    report reflects the last (``runtime.wait_for(receipt, ["reporting"])``), in
    ``segments`` equal parts timed one after the other (the tills do not pause between
    them); then drain and verify, untimed.

    ``separate``: the tills run in their own OS process (:class:`ProcessTills`), else in a
    thread of this one (:class:`ThreadTills`). ``reporting_apart``: the report's processor
    runs in a third process (:class:`ReportingWorker`), Inventory in this one (with
    ``separate`` only). ``store_type``: :class:`CountingStore` to
    count statements (both processes). ``memory``: a :class:`MemoryEventStore` instead
    (``path`` unused; the tills in a thread). ``on_segment(done, checkouts)`` after each
    segment is in the report (progress).
    """
    segment = -(-checkouts // segments)
    wait = timeout if timeout is not None else max(60.0, segment / 1_000)
    store, tills, apart = _place(
        path, seed, batch_size, store_type, memory, separate, reporting_apart
    )
    run = ShopRun(tills.kind if apart is None else "three processes")
    shop = Shop(store)
    here = [each.name for each in shop.processors if not apart or each.name != REPORTING]
    try:
        async with shop.runtime(run=here) as runtime:
            try:
                await _settle_seeding(runtime, await tills.seed())
                timed = _Timed(store, runtime, await tills.facts(), apart)
                run.start_memory = memory_now()
                cpu_mark = process_tree_cpu()
                started = time.perf_counter()
                tills.start(checkouts, segment, window)
                mark = started
                while run.checkouts < checkouts:
                    facts = await tills.next_segment(wait)
                    outcome = await runtime.wait_for(_at(facts.position), [REPORTING], wait)
                    if not outcome.reached:
                        run.status = "stalled" if outcome.status == "timed_out" else "failed"
                        run.detail = (
                            f"the report did not reflect checkout position {facts.position} "
                            f"({outcome.status} after {outcome.elapsed:.1f}s, behind "
                            f"{outcome.behind}, {outcome.failures})"
                        )
                        break
                    now, cpu_now = time.perf_counter(), process_tree_cpu()
                    run.segments.append(
                        Segment(facts, now - mark, memory_now(), cpu_now - cpu_mark)
                    )
                    mark, cpu_mark = now, cpu_now
                    if on_segment is not None:
                        on_segment(run.checkouts, checkouts)
                timed.finish(run, store, runtime, await tills.facts())
                if run.status == "ok":
                    await runtime.drain(timeout=wait)
            except Exception as error:
                run.status, run.detail = ended_by(error)
        if run.status == "ok":
            run.status, run.detail = judged(await verify(store, tills))
            run.report = final_report(store)
    finally:
        await tills.close()
        store.close()
        if apart is not None:
            apart.close()
    return run


def _run_shop_in_child(conn: Connection, path: Path, checkouts: int, options: Any) -> None:
    try:
        conn.send(("ok", asyncio.run(run_shop(path, checkouts, **options))))
    except BaseException:
        conn.send(("error", traceback.format_exc(limit=6)))
    finally:
        conn.close()


def run_shop_in_fresh_process(path: Path, checkouts: int, **options: Any) -> ShopRun:
    """:func:`run_shop` in a new process (``spawn``), so that the memory measured is the
    shop's own and not what earlier cases left in this process's heap."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_run_shop_in_child, args=(theirs, path, checkouts, options), name="bench-shop"
    )
    process.start()
    theirs.close()
    try:
        kind, value = ours.recv()
    except EOFError:
        run = ShopRun("two processes" if options.get("separate") else "one process")
        run.status, run.detail = "failed", "the shop's process died"
        return run
    finally:
        process.join(30.0)
        ours.close()
    if kind != "ok" or not isinstance(value, ShopRun):
        raise ProducerFailed(f"the shop's process failed: {value}")
    return value


# -- latency under an open-loop load -------------------------------------------------------


class Reflections:
    """When the processors passed each checkout: the moment this process *observed* a
    durable checkpoint at or past the checkout's position.

    The store calls :meth:`on_commit` from its writer thread after every commit made through
    it (the tills, Inventory and the report all write through this store object); that
    schedules one :meth:`observe` on the event loop, which reads the durable checkpoints
    (one small query) and stamps every receipt they now cover. A 10 ms poll backs it up.
    The stamp is taken after the commit and a hop to the loop, so it errs late, never early.
    """

    def __init__(self, store: EventStore, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.passed: dict[str, list[float]] = {
            INVENTORY: [math.nan] * count,
            REPORTING: [math.nan] * count,
        }
        self._waiting: dict[str, list[tuple[int, int]]] = {INVENTORY: [], REPORTING: []}
        self._checkpoints: dict[str, int] = {INVENTORY: 0, REPORTING: 0}
        self.remaining = count
        self.done = asyncio.Event()
        self._scheduled = False

    def on_commit(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self.observe)

    def expect(self, index: int, position: int) -> None:
        """Checkout ``index`` took ``position``."""
        for waiting in self._waiting.values():
            heapq.heappush(waiting, (position, index))
        self._stamp(self.loop.time())

    def observe(self) -> None:
        self._scheduled = False
        now = self.loop.time()
        checkpoints = self.store.checkpoints()
        for name in self._waiting:
            self._checkpoints[name] = checkpoints.get(name, {}).get(0, 0)
        self._stamp(now)

    def _stamp(self, now: float) -> None:
        for name, waiting in self._waiting.items():
            checkpoint, stamps = self._checkpoints[name], self.passed[name]
            while waiting and waiting[0][0] <= checkpoint:
                _, index = heapq.heappop(waiting)
                stamps[index] = now
                if name == REPORTING:
                    self.remaining -= 1
        if self.remaining == 0:
            self.done.set()

    async def poll(self, every: float = 0.01) -> None:
        while not self.done.is_set():
            await asyncio.sleep(every)
            self.observe()


@dataclass
class LatencyRun:
    """Milliseconds from each checkout's *scheduled* send time to its receipt (``append``),
    to Inventory passing it, and to the report reflecting it."""

    rate: float
    status: Status = "ok"
    detail: str = ""
    append: list[float] = field(default_factory=list)
    inventory: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    late_send: float = 0.0
    """The most a send started after its scheduled time (ms)..."""
    late_index: int = 0
    """...and which send that was."""
    processors: dict[str, dict[str, int]] = field(default_factory=dict)
    writer: dict[str, int] = field(default_factory=dict)
    payments: str = ""
    """With payments: how the checkouts paid (:meth:`PaidCheckouts.summary`)."""

    @property
    def checkouts(self) -> int:
        return len(self.report)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank; ``nan`` when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def _open_loop(
    tills: Tills,
    reflections: Reflections,
    rate: float,
    count: int,
    run: LatencyRun,
    paid: PaidCheckouts | None = None,
) -> tuple[list[float], list[float]]:
    """Send ``count`` checkouts at their scheduled times (with ``paid``: each with its
    tenders by number, :func:`bench.paying.tenders_for`); the scheduled times and the
    moments their receipts came back."""
    loop = reflections.loop
    scheduled = [0.0] * count
    appended = [math.nan] * count
    sale = tills.shop.sale

    async def one(index: int) -> None:
        command, expected = tills.command(index)
        if paid is None:
            receipt = await sale.checkout_async(command)
        else:
            command = paid.paying(command, tenders_for(index, expected.total))
            receipt, recorded = await sale.checkout_recorded_async(command)
            paid.recorded(recorded)
        appended[index] = loop.time()
        reflections.expect(index, tills.record(index, receipt, command.checkout_id))

    # only the tasks still running are kept: a list of every finished task (and its
    # coroutine) would hand the garbage collector tens of thousands of objects to walk
    running: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            failures.append(error)

    start = loop.time() + 0.01
    for index in range(count):
        due = start + index / rate
        scheduled[index] = due
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        if (late := (loop.time() - due) * 1000) > run.late_send:
            run.late_send, run.late_index = late, index
        task = asyncio.create_task(one(index))
        running.add(task)
        task.add_done_callback(finished)
    while running:
        await asyncio.wait(set(running))
    if failures:
        raise failures[0]
    return scheduled, appended


@with_tuned_collector
async def run_latency(
    path: Path,
    rate: float,
    seconds: float,
    *,
    seed: int = 1,
    timeout: float = 30.0,
    memory: bool = False,
    payments: bool = False,
    terminal_latency: float = 0.0,
) -> LatencyRun:
    """An open-loop load: checkout *i* is scheduled at ``start + i / rate`` and sent then
    (``SaleService.checkout_async``, one task each) however long earlier ones take, so a
    slow moment delays no later send and is paid for by every checkout it held up
    (no coordinated omission). Each latency runs from the scheduled time to the moment
    :class:`Reflections` observed the processor's durable checkpoint at or past the
    receipt's position. Tills and shop share this process and its store (``memory``: a
    :class:`MemoryEventStore`, ``path`` unused).

    ``payments``: the checkouts pay by cash, card or both (:mod:`bench.paying`, through
    ``checkout_recorded_async``), cards through a :class:`SimulatedTerminal` answering after
    ``terminal_latency`` seconds; the money recorded is verified with the rest."""
    count = max(1, round(rate * seconds))
    store: EventStore = (
        MemoryEventStore(registry=REGISTRY)
        if memory
        else SqliteEventStore(path, durability="full", registry=REGISTRY)
    )
    terminal = SimulatedTerminal(latency=terminal_latency) if payments else None
    tills = Tills(store, seed, terminal=terminal)
    paid = PaidCheckouts(terminal) if terminal is not None else None
    run = LatencyRun(rate)
    try:
        async with tills.shop.runtime() as runtime:
            try:
                await _settle_seeding(runtime, await asyncio.to_thread(tills.seed))
                counters, writer = _counters(runtime), writer_statistics(store)
                reflections = Reflections(store, count, asyncio.get_running_loop())
                remove = store.add_commit_listener(reflections.on_commit)
                poller = asyncio.create_task(reflections.poll())
                try:
                    scheduled, appended = await _open_loop(
                        tills, reflections, rate, count, run, paid
                    )
                    await asyncio.wait_for(reflections.done.wait(), timeout)
                except TimeoutError:
                    run.status = "stalled"
                    run.detail = (
                        f"{reflections.remaining} of {count} checkouts not in the report "
                        f"{timeout:.0f}s after the last send"
                    )
                finally:
                    poller.cancel()
                    remove()
                run.processors = {
                    name: _minus(values, counters.get(name, {}))
                    for name, values in _counters(runtime).items()
                }
                run.writer = _minus(writer_statistics(store), writer)
                if run.status == "ok":
                    await runtime.drain(timeout=timeout)
                    run.append, run.inventory, run.report = [
                        [(stamp - due) * 1000 for stamp, due in zip(stamps, scheduled, strict=True)]
                        for stamps in (
                            appended,
                            reflections.passed[INVENTORY],
                            reflections.passed[REPORTING],
                        )
                    ]
            except Exception as error:
                run.status, run.detail = ended_by(error)
        if run.status == "ok":
            problems = audited(store) + [f"truth: {p}" for p in tills.violations()]
            if paid is not None:
                problems += [f"payments: {p}" for p in paid.problems(tills.gross(), count)]
                run.payments = paid.summary()
            run.status, run.detail = judged(problems)
    finally:
        store.close()
    return run


def summary(values: Sequence[float]) -> str:
    """``p50 / p99 / max`` in milliseconds."""
    if not values:
        return "—"
    return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f} / {max(values):.1f} ms"
