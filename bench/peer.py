"""The peer: the same point-of-sale workload written idiomatically on the Python
``eventsourcing`` library (installed only for the benchmark: ``pip install -e '.[bench]'``).

A :class:`~eventsourcing.system.System` of three applications, one pipe::

    Sale (Application) ──► Inventory (ProcessApplication) ──► Reporting (ProcessApplication)
    Product, Checkout       Stock per product                  ProductSales per product, Totals

* ``Sale`` prices a checkout from its ``Product`` aggregates and saves a new ``Checkout``
  aggregate (its ``CheckedOut`` event holds the priced lines).
* ``Inventory``'s policy takes each line off the product's ``Stock`` aggregate
  (``Taken``, and ``Shortfall`` when it goes below zero), collecting the events on the
  processing event: they are recorded atomically with the tracking record of the checkout.
* ``Reporting``'s policy folds Inventory's events into a ``ProductSales`` aggregate per
  product and one ``Totals`` aggregate (a checkout is counted at its first line).

Everything is as the library's documentation shows it: explicit event classes with the
``@event`` decorator, ``create_id`` for deterministic ids, ``singledispatchmethod``
policies, ``collect_events``, ``topics`` so that Inventory pulls only checkouts, the
aggregate cache (``AGGREGATE_CACHE_MAXSIZE``, the library's documented setting for
applications that read the same aggregates often), a separate SQLite database per
application (as the library requires) or one PostgreSQL database (the library prefixes
each application's tables with its name). Persistence and runner are chosen through the
environment and the runner class, nothing else changes.

The run (:func:`run_peer`): seed the catalog and the opening stock, wait until Reporting
has them, then ring up ``checkouts`` checkouts one after the other from the main thread
(closed loop) and time until Reporting has processed the last one; optionally an open-loop
phase for latency. A run whose followers stop making progress is ``stalled``, one whose
report disagrees with :func:`bench.pos.truth` is ``wrong``: neither is timed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, DomainEventProtocol, event
from eventsourcing.persistence import Tracking
from eventsourcing.system import (
    MultiThreadedRunner,
    NewMultiThreadedRunner,
    ProcessApplication,
    Runner,
    SingleThreadedRunner,
    System,
)
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict

from bench.pos import PosReport, ProductFigures, truth, violations, workload
from bench.shop import STARTING_STOCK, TILLS
from tillflow.engine import format_id, new_event_id

Persistence = Literal["popo", "sqlite", "postgres"]
RunnerName = Literal["single", "multi", "new-multi"]
Status = Literal["ok", "wrong", "stalled", "failed"]

RUNNERS: Final[dict[RunnerName, type[Runner[Any]]]] = {
    "single": SingleThreadedRunner,
    "multi": MultiThreadedRunner,
    "new-multi": NewMultiThreadedRunner,
}
CACHE_SIZE: Final = "1000"
"""Aggregates each application keeps (200 products, 200 stocks, 201 report aggregates)."""


def _id(kind: str, key: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"/{kind}/{key}")


# -- Sale ----------------------------------------------------------------------------------


class Product(Aggregate):
    class Added(Aggregate.Created):
        product_id: str
        name: str
        price: int

    @event(Added)
    def __init__(self, product_id: str, name: str, price: int) -> None:
        self.product_id = product_id
        self.name = name
        self.price = price

    @staticmethod
    def create_id(product_id: str) -> UUID:
        return _id("products", product_id)


class Checkout(Aggregate):
    class CheckedOut(Aggregate.Created):
        checkout_id: str
        till_id: str
        lines: list[dict[str, Any]]
        total: int

    @event(CheckedOut)
    def __init__(
        self, checkout_id: str, till_id: str, lines: list[dict[str, Any]], total: int
    ) -> None:
        self.checkout_id = checkout_id
        self.till_id = till_id
        self.lines = lines
        self.total = total

    @staticmethod
    def create_id(checkout_id: str) -> UUID:
        return _id("checkouts", checkout_id)


class Sale(Application[UUID]):
    def add_products(self, products: Sequence[tuple[str, str, int]]) -> None:
        """The catalog, in one transaction."""
        self.save(*(Product(product_id, name, price) for product_id, name, price in products))

    def checkout(self, checkout_id: str, till_id: str, lines: Sequence[tuple[str, int]]) -> int:
        """Price the lines from the catalog and record the checkout; its notification id."""
        priced: list[dict[str, Any]] = []
        for product_id, quantity in lines:
            product: Product = self.repository.get(Product.create_id(product_id))
            priced.append(
                {
                    "product_id": product_id,
                    "name": product.name,
                    "quantity": quantity,
                    "unit_price": product.price,
                    "line_total": product.price * quantity,
                }
            )
        total = sum(line["line_total"] for line in priced)
        recordings = self.save(Checkout(checkout_id, till_id, priced, total))
        return recordings[-1].notification.id


# -- Inventory -----------------------------------------------------------------------------


class Stock(Aggregate):
    class Opened(Aggregate.Created):
        product_id: str

    class Received(Aggregate.Event):
        product_id: str
        quantity: int
        stock_after: int

    class Taken(Aggregate.Event):
        product_id: str
        checkout_id: str
        line: int
        quantity: int
        line_total: int
        stock_after: int

    class Shortfall(Aggregate.Event):
        checkout_id: str
        units_short: int

    @event(Opened)
    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        self.level = 0

    @staticmethod
    def create_id(product_id: str) -> UUID:
        return _id("stock", product_id)

    def receive(self, quantity: int) -> None:
        self._received(self.product_id, quantity, self.level + quantity)

    @event(Received)
    def _received(self, product_id: str, quantity: int, stock_after: int) -> None:
        self.level = stock_after

    def take(self, checkout_id: str, line: int, quantity: int, line_total: int) -> None:
        after = self.level - quantity
        self._taken(self.product_id, checkout_id, line, quantity, line_total, after)
        if after < 0:
            self._short(checkout_id, min(quantity, -after))

    @event(Taken)
    def _taken(
        self,
        product_id: str,
        checkout_id: str,
        line: int,
        quantity: int,
        line_total: int,
        stock_after: int,
    ) -> None:
        self.level = stock_after

    @event(Shortfall)
    def _short(self, checkout_id: str, units_short: int) -> None:
        pass


class Inventory(ProcessApplication[UUID]):
    topics: Sequence[str] = (get_topic(Checkout.CheckedOut),)

    def receive_opening_stock(self, deliveries: Sequence[tuple[str, int]]) -> None:
        """A stock aggregate per product with its first delivery, in one transaction."""
        stocks = []
        for product_id, quantity in deliveries:
            stock = Stock(product_id)
            stock.receive(quantity)
            stocks.append(stock)
        self.save(*stocks)

    @singledispatchmethod
    def policy(
        self,
        domain_event: DomainEventProtocol[UUID],
        processing_event: ProcessingEvent[UUID],
    ) -> None:
        """Other events: nothing to do."""

    @policy.register(Checkout.CheckedOut)
    def _(self, domain_event: Checkout.CheckedOut, processing_event: ProcessingEvent[UUID]) -> None:
        for index, line in enumerate(domain_event.lines):
            stock: Stock = self.repository.get(Stock.create_id(line["product_id"]))
            stock.take(domain_event.checkout_id, index, line["quantity"], line["line_total"])
            processing_event.collect_events(stock)


# -- Reporting -----------------------------------------------------------------------------


class ProductSales(Aggregate):
    class Opened(Aggregate.Created):
        product_id: str

    class Received(Aggregate.Event):
        quantity: int
        stock_after: int

    class Sold(Aggregate.Event):
        quantity: int
        revenue: int
        stock_after: int

    @event(Opened)
    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        self.received = 0
        self.sold = 0
        self.revenue = 0
        self.stock_left = 0

    @staticmethod
    def create_id(product_id: str) -> UUID:
        return _id("product-sales", product_id)

    @event(Received)
    def receive(self, quantity: int, stock_after: int) -> None:
        self.received += quantity
        self.stock_left = stock_after

    @event(Sold)
    def sell(self, quantity: int, revenue: int, stock_after: int) -> None:
        self.sold += quantity
        self.revenue += revenue
        self.stock_left = stock_after


class Totals(Aggregate):
    class Started(Aggregate.Created):
        pass

    class Added(Aggregate.Event):
        checkouts: int
        revenue: int

    @event(Started)
    def __init__(self) -> None:
        self.checkouts = 0
        self.revenue = 0

    @staticmethod
    def create_id() -> UUID:
        return _id("totals", "all")

    @event(Added)
    def add(self, checkouts: int, revenue: int) -> None:
        self.checkouts += checkouts
        self.revenue += revenue


class Reporting(ProcessApplication[UUID]):
    stamps: dict[str, float] | None = None
    """When set (the latency phase), the moment each checkout's last line was recorded
    here: measurement only, after the library has committed the event's effects."""

    @singledispatchmethod
    def policy(
        self,
        domain_event: DomainEventProtocol[UUID],
        processing_event: ProcessingEvent[UUID],
    ) -> None:
        """Other events: nothing to do."""

    @policy.register(Stock.Opened)
    def _(self, domain_event: Stock.Opened, processing_event: ProcessingEvent[UUID]) -> None:
        processing_event.collect_events(ProductSales(domain_event.product_id))

    @policy.register(Stock.Received)
    def _(self, domain_event: Stock.Received, processing_event: ProcessingEvent[UUID]) -> None:
        sales: ProductSales = self.repository.get(ProductSales.create_id(domain_event.product_id))
        sales.receive(domain_event.quantity, domain_event.stock_after)
        processing_event.collect_events(sales)

    @policy.register(Stock.Taken)
    def _(self, domain_event: Stock.Taken, processing_event: ProcessingEvent[UUID]) -> None:
        sales: ProductSales = self.repository.get(ProductSales.create_id(domain_event.product_id))
        sales.sell(domain_event.quantity, domain_event.line_total, domain_event.stock_after)
        totals = self._totals()
        totals.add(1 if domain_event.line == 0 else 0, domain_event.line_total)
        processing_event.collect_events(sales, totals)

    def _totals(self) -> Totals:
        try:
            totals: Totals = self.repository.get(Totals.create_id())
        except AggregateNotFoundError:
            totals = Totals()
        return totals

    def process_event(self, domain_event: DomainEventProtocol[UUID], tracking: Tracking) -> None:
        super().process_event(domain_event, tracking)
        if self.stamps is not None and isinstance(domain_event, Stock.Taken):
            self.stamps[domain_event.checkout_id] = time.perf_counter()

    def report(self, product_ids: Sequence[str]) -> PosReport:
        products = {}
        for product_id in product_ids:
            try:
                sales: ProductSales = self.repository.get(ProductSales.create_id(product_id))
            except AggregateNotFoundError:
                continue
            products[product_id] = ProductFigures(sales.sold, sales.revenue, sales.stock_left)
        totals = self._totals()
        return PosReport(products, totals.checkouts, totals.revenue)


SYSTEM: Final = System(pipes=[[Sale, Inventory, Reporting]])


# -- one run -------------------------------------------------------------------------------


@dataclass
class PeerRun:
    """One run of the peer. Only an ``ok`` run's figures mean anything."""

    persistence: Persistence
    runner: RunnerName
    checkouts: int
    status: Status = "ok"
    detail: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latency_rate: float = 0.0
    latency: list[float] = field(default_factory=list)
    """Milliseconds from each open-loop checkout's scheduled send to Reporting having
    recorded its last line."""
    report: dict[str, Any] = field(default_factory=dict)
    issued: int = 0
    """Checkouts rung up in all (timed and open loop): what the report must reflect."""

    @property
    def rate(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0


class Stalled(Exception):
    pass


def environment(
    persistence: Persistence, directory: Path, postgres_url: str | None = None
) -> dict[str, str]:
    """The library's settings: ``postgres`` needs ``postgres_url`` (one database; the
    library prefixes each application's tables with its name)."""
    env = {"AGGREGATE_CACHE_MAXSIZE": CACHE_SIZE}
    if persistence == "popo":
        env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
    elif persistence == "postgres":
        if postgres_url is None:
            raise ValueError("the peer on PostgreSQL needs postgres_url")
        env.update(postgres_environment(postgres_url))
    else:
        env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
        for app in (Sale, Inventory, Reporting):
            env[f"{app.name.upper()}_SQLITE_DBNAME"] = str(directory / f"{app.name.lower()}.db")
    return env


def postgres_environment(url: str) -> dict[str, str]:
    """The library's PostgreSQL settings for the database named by ``url`` (it insists on
    a password: any will do under ``trust``)."""
    parts = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(parts.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(parts.get("port") or "5432"),
        "POSTGRES_USER": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or "unused"),
    }


class _Pipeline:
    """The running system and how far each follower has got."""

    def __init__(self, runner: Runner[Any]) -> None:
        self.runner = runner
        self.sale = runner.get(Sale)
        self.inventory = runner.get(Inventory)
        self.reporting = runner.get(Reporting)

    def errors(self) -> str | None:
        runner = self.runner
        if (
            isinstance(runner, MultiThreadedRunner | NewMultiThreadedRunner)
            and runner.has_errored.is_set()
        ):
            threads: Sequence[Any] = (
                list(runner.threads.values())
                if isinstance(runner, MultiThreadedRunner)
                else runner.all_threads
            )
            found = [repr(thread.error.__cause__) for thread in threads if thread.error]
            return "; ".join(found) or "a runner thread failed"
        return None

    def seed(self, stall_seconds: float) -> None:
        """The catalog and the opening stock, each in one transaction; until Reporting
        has them."""
        products = workload().products
        self.sale.add_products(
            [(product.product_id, product.name, product.price) for product in products]
        )
        self.inventory.receive_opening_stock(
            [(product.product_id, STARTING_STOCK) for product in products]
        )
        self.wait(0, stall_seconds)

    def closed_loop(self, checkouts: int, progress: Callable[[str], None], label: str) -> int:
        """Ring up ``checkouts`` checkouts one after the other; the last one's position."""
        pool = workload()
        told = time.perf_counter()
        position = 0
        for number in range(checkouts):
            position = self.sale.checkout(
                checkout_id(number), f"till-{number % TILLS:02d}", pool.requests(number)
            )
            if (now := time.perf_counter()) - told > 2.0:
                progress(f"{label}: {number + 1:,} of {checkouts:,} checkouts rung up")
                told = now
        return position

    def position(self) -> tuple[int, int]:
        inventory = self.inventory.recorder.max_tracking_id(Sale.name) or 0
        reporting = self.reporting.recorder.max_tracking_id(Inventory.name) or 0
        return inventory, reporting

    def wait(self, sale_position: int, stall_seconds: float) -> None:
        """Until Inventory has processed the checkout at ``sale_position`` (0: none) and
        Reporting everything Inventory recorded; :class:`Stalled` when neither moves for
        ``stall_seconds``."""
        last = self.position()
        moved = time.monotonic()
        while True:
            if (error := self.errors()) is not None:
                raise RuntimeError(error)
            inventory, reporting = self.position()
            if inventory >= sale_position:
                target = self.inventory.recorder.max_notification_id() or 0
                if reporting >= target:
                    return
            if (inventory, reporting) != last:
                last, moved = (inventory, reporting), time.monotonic()
            elif time.monotonic() - moved > stall_seconds:
                target = self.inventory.recorder.max_notification_id() or 0
                raise Stalled(
                    f"no progress for {stall_seconds:g}s: Inventory at Sale's notification "
                    f"{inventory} of {sale_position}, Reporting at Inventory's {reporting} "
                    f"of {target}"
                )
            time.sleep(0.002)


def checkout_id(number: int) -> str:
    return f"{format_id(new_event_id())}-{number}"


def run_peer(
    directory: Path,
    persistence: Persistence,
    runner_name: RunnerName,
    checkouts: int,
    *,
    latency_rate: float = 0.0,
    latency_fraction: float = 0.5,
    latency_seconds: float = 0.0,
    stall_seconds: float = 10.0,
    progress: Callable[[str], None] = lambda _: None,
    postgres_url: str | None = None,
) -> PeerRun:
    """Seed, then time ``checkouts`` closed-loop checkouts end to end; then, if
    ``latency_rate``, an open loop for ``latency_seconds`` at ``latency_rate`` or at
    ``latency_fraction`` of the throughput just measured, whichever is lower (an open loop
    faster than the runner can go only measures a growing queue); then check the report
    against the truth of every checkout rung up."""
    pool = workload()
    run = PeerRun(persistence, runner_name, checkouts)
    env = environment(persistence, directory, postgres_url)
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key in env}
    runner = RUNNERS[runner_name](SYSTEM, env=env)
    issued = 0
    try:
        runner.start()
        pipeline = _Pipeline(runner)
        pipeline.seed(stall_seconds)
        label = f"eventsourcing {persistence} {runner_name}"
        started, cpu = time.perf_counter(), time.process_time()
        position = pipeline.closed_loop(checkouts, progress, label)
        issued = checkouts
        pipeline.wait(position, stall_seconds)
        run.seconds = time.perf_counter() - started
        run.cpu_seconds = time.process_time() - cpu
        if latency_rate > 0 and latency_seconds > 0:
            rate = min(latency_rate, latency_fraction * run.rate)
            count = max(1, round(rate * latency_seconds))
            progress(f"{label}: {count:,} checkouts open loop at {rate:,.0f}/s")
            run.latency_rate = rate
            run.latency = _open_loop(pipeline, issued, count, rate, stall_seconds)
            issued += count
        run.issued = issued
        report = pipeline.reporting.report([product.product_id for product in pool.products])
        run.report = report.as_data()
        problems = violations(report, truth(issued))
        if problems:
            run.status, run.detail = "wrong", "; ".join(problems)
    except Stalled as error:
        run.status, run.detail = "stalled", str(error)
    except Exception as error:
        run.status, run.detail = "failed", f"{type(error).__name__}: {error}"
    finally:
        try:
            runner.stop()
        except Exception as error:
            if run.status == "ok":
                run.status, run.detail = "failed", f"on stop: {type(error).__name__}: {error}"
        os.environ.update(saved)
    return run


def _open_loop(
    pipeline: _Pipeline, first: int, count: int, rate: float, stall_seconds: float
) -> list[float]:
    """Checkout *i* scheduled at ``start + i / rate`` and sent then (or at once when the
    previous send returned late: a synchronous runner holds the caller until Reporting is
    done). Milliseconds from each scheduled send to Reporting's stamp."""
    pool = workload()
    stamps: dict[str, float] = {}
    pipeline.reporting.stamps = stamps
    ids = [checkout_id(first + index) for index in range(count)]
    scheduled = [0.0] * count
    start = time.perf_counter() + 0.01
    position = 0
    for index in range(count):
        due = start + index / rate
        scheduled[index] = due
        if (delay := due - time.perf_counter()) > 0:
            time.sleep(delay)
        number = first + index
        position = pipeline.sale.checkout(
            ids[index], f"till-{number % TILLS:02d}", pool.requests(number)
        )
    pipeline.wait(position, stall_seconds)
    pipeline.reporting.stamps = None
    return [(stamps.get(ids[i], math.nan) - scheduled[i]) * 1000 for i in range(count)]
