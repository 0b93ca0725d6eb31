"""The shop demo: tills ring up checkouts on a live shop while deliveries arrive, a few
customers bring things back and some products run out — then the report is checked against
the truth computed from the commands the demo issued.

::

    tills (asyncio, open loop) ──Checkout──► Sale ──CheckedOut──► inventory ──► reporting
    delivery truck (thread) ──ReceiveStock──► Inventory ─────────────┘   (after inventory)
    returns desk (thread) ──ReturnItems──► Sale (refunds to the card through the terminal)
    every tick: the report as committed (rows, totals, freshness) + processor statistics

Every product carries an in-store EAN-13 (GS1 prefix 20) and tills scan about half the lines
by barcode, the rest by product id; the truth resolves barcodes from the seeded catalog.

Customers pay with cash, a card or both (:mod:`tillflow.demos.paying`); some cards are
declined — no sale — and the customer pays the same basket in cash or walks away. The
verdict also checks the money: tenders = gross = the report's revenue, per till and in all,
and the card terminal charged exactly what the card tenders say (never twice); and the
receipt numbers: each till's are 1..n, one per checkout (:mod:`tillflow.shop.receipts.audit`).

Each till opens a session with a float before the first customer and is cashed up once the
shop has closed and the processors have caught up; the verdict checks the Z reports against
the log (:mod:`tillflow.demos.cash_up`).

Nothing here draws on the screen: :func:`run_shop_demo` calls ``on_tick`` with a
:class:`Snapshot` a few times a second and returns a :class:`Verdict`.

Oversells are deliberate: a few *scarce* products start with a handful of units and are never
reordered, so they sell out and keep selling (a sale at a till is never refused for stock):
Inventory records a ``StockShortfall`` — the apology — and the report shows the open
shortfall. The other products are reordered when low and the truck arrives a little later,
so some of them run short for a moment and the delivery resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from tillflow.demos.cash_up import DemoTills
from tillflow.demos.paying import Payments, demo_terminal, pay
from tillflow.engine import (
    EventStore,
    ProcessorStatistics,
    Receipt,
    Runtime,
    TillflowError,
    format_id,
    new_event_id,
)
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.reporting.audit import ConsistentCutAudit, identity_violations
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.queries import Report
from tillflow.shop.reporting.tender_audit import tender_violations
from tillflow.shop.reporting.truth import ShopTruth, expected_line
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, ReturnLine
from tillflow.shop.sale.gtin import check_digit
from tillflow.shop.sale.vat import DEFAULT_RATES
from tillflow.shop.tills.rows import TillSession


@dataclass(frozen=True)
class Item:
    """A product of the seeded catalog; ``popularity`` weighs how often tills sell it."""

    product_id: str
    name: str
    price: int  # cents, tax included
    popularity: float
    scarce: bool = False
    tax_rate: str = "reduced"  # groceries; zero and standard below


CATALOG: Final[tuple[Item, ...]] = (
    Item("milk", "Whole milk 1 L", 129, 10.0, tax_rate="zero"),
    Item("bread", "Sourdough loaf", 450, 9.0, tax_rate="zero"),
    Item("bananas", "Bananas, bunch", 189, 8.0),
    Item("eggs", "Free-range eggs ×6", 345, 7.0),
    Item("apples", "Apples 1 kg", 299, 6.5),
    Item("coffee", "Coffee beans 500 g", 1199, 6.0),
    Item("butter", "Butter 250 g", 279, 5.5),
    Item("tomatoes", "Vine tomatoes 500 g", 249, 5.0),
    Item("pasta", "Spaghetti 500 g", 159, 4.5),
    Item("yogurt", "Greek yogurt 500 g", 319, 4.0),
    Item("cheese", "Comté 200 g", 625, 3.5),
    Item("chocolate", "Dark chocolate 100 g", 229, 3.5, tax_rate="standard"),
    Item("rice", "Basmati rice 1 kg", 349, 3.0),
    Item("oranges", "Oranges 1 kg", 279, 3.0),
    Item("tea", "Earl Grey, 50 bags", 399, 2.5),
    Item("flour", "Flour T65 1 kg", 119, 2.0),
    Item("olive-oil", "Olive oil 750 ml", 899, 2.0),
    Item("honey", "Wildflower honey 500 g", 749, 1.5),
    Item("croissant", "Butter croissant", 135, 1.2, scarce=True),
    Item("strawberries", "Strawberries 250 g", 399, 0.8, scarce=True),
    Item("oysters", "Oysters ×12", 1890, 0.5, scarce=True),
    Item("truffle", "Black truffle 30 g", 2499, 0.3, scarce=True),
    Item("saffron", "Saffron 1 g", 899, 1.0),
    Item("flowers", "Bunch of tulips", 650, 1.5, tax_rate="standard"),
)
"""24 products; the four marked ``scarce`` start with a few units and are never reordered."""

BY_ID: Final = {item.product_id: item for item in CATALOG}
GTINS: Final = {
    item.product_id: f"20{number:010d}{check_digit(f'20{number:010d}')}"
    for number, item in enumerate(CATALOG, start=1)
}
"""Each product's in-store EAN-13 (prefix 20: numbers a shop gives its own items)."""
BY_GTIN: Final = {gtin: product_id for product_id, gtin in GTINS.items()}
SCANNED_SHARE: Final = 0.5  # lines a till rings up by barcode rather than by id
QUANTITIES: Final = (1, 1, 1, 1, 1, 1, 1, 2, 2, 3)  # units per line, as a till sees them
UNITS_PER_LINE: Final = sum(QUANTITIES) / len(QUANTITIES)
LINES_PER_CHECKOUT: Final = 3.0  # 1..5 distinct products (before merging repeats)
RETRY_SHARE: Final = 0.01  # a till resends its last checkout (a network blip): counted once
RETURN_SHARE: Final = 0.01  # returns per checkout
LEAD_TIME: Final = (0.4, 1.2)  # seconds between ordering a delivery and its arrival
TICK: Final = 0.25  # seconds between snapshots
RECENT: Final = 10_000  # checkouts a customer may bring something back from


@dataclass(frozen=True)
class ShopDemoSettings:
    duration: float = 10.0
    tills: int = 4
    rate: float = 500.0  # checkouts per second, all tills together
    seed: int = 1

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming the option (empty when fine)."""
        found = []
        if not (math.isfinite(self.duration) and 0.1 <= self.duration <= 3600):
            found.append(f"--duration must be 0.1 to 3600 seconds, not {self.duration}")
        if not 1 <= self.tills <= 256:
            found.append(f"--tills must be 1 to 256, not {self.tills}")
        if not (math.isfinite(self.rate) and 1 <= self.rate <= 100_000):
            found.append(f"--rate must be 1 to 100000 checkouts per second, not {self.rate}")
        return found


@dataclass
class Counters:
    """What the demo has issued so far (commands the shop accepted, and refusals)."""

    checkouts: int = 0
    lines: int = 0
    units: int = 0
    retries: int = 0
    deliveries: int = 0
    units_delivered: int = 0
    returns: int = 0
    units_returned: int = 0
    refusals: int = 0
    behind_schedule: float = 0.0  # the most a till has been behind its arrival schedule (s)
    selling_seconds: float = 0.0  # from the first till opening to the last one's last customer
    read_your_writes_waits: int = 0
    read_your_writes: float = 0.0  # seconds the last read-your-writes wait took
    read_your_writes_max: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """The shop at one moment, for a live view."""

    elapsed: float
    settings: ShopDemoSettings
    phase: str  # "selling", "draining", "done"
    counters: Counters
    report: Report
    statistics: list[ProcessorStatistics]
    identity_checks: int  # report rows checked live against the stock identity
    identity_breaks: int


@dataclass
class Verdict:
    """The report against the truth after the processors caught up."""

    counters: Counters
    problems: list[str]
    products: int
    units_oversold: int  # units sold that were not on the shelf (apologies)
    open_shortfall: int  # units still short at the end
    short_products: list[str]
    elapsed: float
    drain_seconds: float
    max_lag_events: dict[str, int] = field(default_factory=dict)
    max_lag_seconds: dict[str, float] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    payments: Payments = field(default_factory=Payments)
    z_reports: list[TillSession] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.problems


def initial_stock(item: Item, settings: ShopDemoSettings, rng: random.Random) -> int:
    """Scarce products: the last few units. The others: about two seconds of demand."""
    if item.scarce:
        return rng.randint(3, 8)
    return math.ceil(demand_per_second(item, settings) * 2.0) + 24


def demand_per_second(item: Item, settings: ShopDemoSettings) -> float:
    share = item.popularity / sum(other.popularity for other in CATALOG)
    return settings.rate * LINES_PER_CHECKOUT * UNITS_PER_LINE * share


class ShopDemo:
    """One run of the demo over one shop (use :func:`run_shop_demo`)."""

    def __init__(self, store: EventStore, settings: ShopDemoSettings) -> None:
        self.store = store
        self.terminal = demo_terminal()
        self.shop = Shop(store, terminal=self.terminal)
        self.payments = Payments()
        self.tills = DemoTills(settings.tills)
        self.gross = 0  # cents of the checkouts rung up, from the catalog's prices alone
        self.settings = settings
        self.truth = ShopTruth()
        self.counters = Counters()
        self.refusals: list[str] = []
        self.recent: list[CheckedOut] = []  # what a customer might bring back (a window)
        self.anomalies: list[str] = []  # answers the shop must never give
        self.returned: dict[tuple[str, str], int] = {}
        self.last_receipt: Receipt | None = None
        self.identity_checks = 0
        self.identity_breaks = 0
        self.max_lag_events: dict[str, int] = {}
        self.max_lag_seconds: dict[str, float] = {}
        self._closing: asyncio.Event | None = None
        self._weights = [item.popularity for item in CATALOG]

    # -- set-up ----------------------------------------------------------------------------

    def seed_catalog(self) -> None:
        """The catalog and a first delivery of everything."""
        rng = random.Random(f"{self.settings.seed}:stock")
        for item in CATALOG:
            self.shop.sale.add_product(
                AddProduct(
                    item.product_id,
                    item.name,
                    item.price,
                    gtin=GTINS[item.product_id],
                    tax_rate=item.tax_rate,
                )
            )
        for item in CATALOG:
            self._receive(
                item.product_id,
                initial_stock(item, self.settings, rng),
                f"opening-{item.product_id}",
            )

    def _receive(self, product_id: str, quantity: int, delivery_id: str) -> None:
        try:
            self.shop.inventory.receive(ReceiveStock(product_id, quantity, delivery_id))
        except TillflowError as refusal:
            self._refused(f"delivery {delivery_id} of {quantity} {product_id}: {refusal}")
            return
        self.truth.received(product_id, quantity)
        self.counters.deliveries += 1
        self.counters.units_delivered += quantity

    def _refused(self, what: str) -> None:
        self.counters.refusals += 1
        if len(self.refusals) < 20:
            self.refusals.append(what)

    # -- the tills -------------------------------------------------------------------------

    def _basket(self, rng: random.Random) -> dict[str, int]:
        basket: dict[str, int] = {}
        for item in rng.choices(CATALOG, self._weights, k=rng.randint(1, 5)):
            basket[item.product_id] = basket.get(item.product_id, 0) + rng.choice(QUANTITIES)
        return basket

    async def till(self, number: int, stop_at: float) -> None:
        """Ring up checkouts at this till's share of the rate, on a schedule fixed in
        advance (open loop): a slow shop makes the till fall behind, not the rate drop.
        Every arrival scheduled before ``stop_at`` is rung up, however late, so the demo's
        workload depends on its seed alone, not on the machine's pace."""
        rng = random.Random(f"{self.settings.seed}:till:{number}")
        scanner = random.Random(f"{self.settings.seed}:scanner:{number}")
        till_id = f"till-{number}"
        per_till = self.settings.rate / self.settings.tills
        loop = asyncio.get_running_loop()
        next_at = loop.time() + rng.expovariate(per_till)
        previous: tuple[Checkout, Receipt] | None = None
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            late = loop.time() - next_at
            self.counters.behind_schedule = max(self.counters.behind_schedule, late)
            if previous is not None and rng.random() < RETRY_SHARE:
                await self._retry(*previous)
            basket = self._basket(rng)
            command = Checkout(
                format_id(new_event_id()),
                till_id,
                [
                    LineRequest(None, quantity, gtin=GTINS[product_id])
                    if scanner.random() < SCANNED_SHARE
                    else LineRequest(product_id, quantity)
                    for product_id, quantity in basket.items()
                ],
            )
            total = sum(BY_ID[product_id].price * units for product_id, units in basket.items())
            try:
                paid = await pay(self.shop.sale, command, total, rng, self.payments)
            except TillflowError as refusal:
                self._refused(f"checkout {command.checkout_id}: {refusal}")
            else:
                if paid is not None:  # else the card was declined and the customer left
                    command, receipt, _ = paid
                    self._rung_up(command, receipt)
                    previous = (command, receipt)
            next_at += rng.expovariate(per_till)

    def _rung_up(self, command: Checkout, receipt: Receipt) -> None:
        """The truth of a checkout, from the command and the catalog's prices alone."""
        lines = []
        for request in command.lines:
            item = BY_ID[request.product_id or BY_GTIN[request.gtin or ""]]
            points = DEFAULT_RATES[item.tax_rate]
            lines.append(
                expected_line(
                    item.product_id, item.name, item.price, request.quantity, item.tax_rate, points
                )
            )
        expected = CheckedOut(
            command.checkout_id,
            command.till_id,
            datetime.now(UTC),
            lines,
            sum(line.line_total for line in lines),
        )
        self.truth.checked_out(expected, receipt)
        self.gross += expected.total
        if len(self.recent) < RECENT:
            self.recent.append(expected)
        else:
            self.recent[self.counters.checkouts % RECENT] = expected
        self.last_receipt = receipt
        self.counters.checkouts += 1
        self.counters.lines += len(lines)
        self.counters.units += sum(line.quantity for line in lines)

    async def _retry(self, command: Checkout, receipt: Receipt) -> None:
        """A till resends a checkout it already rang up: the shop answers with the original
        receipt and records nothing new."""
        try:
            again = await self.shop.sale.checkout_async(command)
        except TillflowError as refusal:
            self._refused(f"retry of checkout {command.checkout_id}: {refusal}")
            return
        self.counters.retries += 1
        if again != receipt:
            self.anomalies.append(
                f"retry of checkout {command.checkout_id} got {again}, not the original {receipt}"
            )

    # -- the back office -------------------------------------------------------------------

    @property
    def _selling(self) -> bool:
        return self._closing is None or not self._closing.is_set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until the shop closes; whether it is still selling."""
        if self._closing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
        return self._selling

    async def truck(self) -> None:
        """Reorder what runs low (as Inventory's stock says) and deliver it after a lead
        time. Scarce products are never reordered."""
        rng = random.Random(f"{self.settings.seed}:truck")
        on_order: dict[str, int] = {}
        arriving: list[asyncio.Task[None]] = []
        orders = 0

        async def deliver(product_id: str, quantity: int, delivery_id: str) -> None:
            await asyncio.sleep(rng.uniform(*LEAD_TIME))
            await asyncio.to_thread(self._receive, product_id, quantity, delivery_id)
            on_order[product_id] -= quantity

        try:
            while self._selling:
                for item in CATALOG:
                    if item.scarce:
                        continue
                    demand = demand_per_second(item, self.settings)
                    level = await asyncio.to_thread(self.shop.inventory.level, item.product_id)
                    if level.stock + on_order.get(item.product_id, 0) < demand * 1.5:
                        quantity = 12 * math.ceil((demand * 3 + 12) / 12)  # whole cases
                        orders += 1
                        on_order[item.product_id] = on_order.get(item.product_id, 0) + quantity
                        delivery = deliver(item.product_id, quantity, f"delivery-{orders}")
                        arriving.append(asyncio.create_task(delivery))
                await self._pause(rng.uniform(0.15, 0.35))
            await asyncio.gather(*arriving)
        finally:
            for task in arriving:
                task.cancel()

    async def returns_desk(self) -> None:
        """Now and then a customer brings back one unit of something they bought."""
        rng = random.Random(f"{self.settings.seed}:returns")
        rate = max(0.5, self.settings.rate * RETURN_SHARE)
        number = 0
        while await self._pause(rng.expovariate(rate)):
            if not self.recent:
                continue
            checked_out = rng.choice(self.recent)
            line = rng.choice(checked_out.lines)
            key = (checked_out.checkout_id, line.product_id)
            if self.returned.get(key, 0) >= line.quantity:
                continue
            number += 1
            command = ReturnItems(
                f"return-{number}", checked_out.checkout_id, [LineRequest(line.product_id, 1)]
            )
            try:
                receipt = await asyncio.to_thread(self.shop.sale.return_items, command)
            except TillflowError as refusal:
                self._refused(f"return {command.return_id}: {refusal}")
                continue
            self.returned[key] = self.returned.get(key, 0) + 1
            refund = ReturnLine(line.product_id, line.name, 1, line.unit_price, line.unit_price)
            self.truth.returned(
                ItemsReturned(
                    command.return_id,
                    checked_out.checkout_id,
                    datetime.now(UTC),
                    [refund],
                    refund.refund,
                ),
                receipt,
            )
            self.counters.returns += 1
            self.counters.units_returned += 1

    async def reader(self, runtime: Runtime) -> None:
        """Read-your-writes: once a second, read the report after waiting until it has
        passed the latest checkout; note how long that took and check that it shows it."""
        while await self._pause(1.0):
            receipt = self.last_receipt
            if receipt is None:
                continue
            started = time.monotonic()
            report = await self.shop.report.read(runtime, receipt, timeout=5.0)
            waited = time.monotonic() - started
            self.counters.read_your_writes_waits += 1
            self.counters.read_your_writes = waited
            self.counters.read_your_writes_max = max(self.counters.read_your_writes_max, waited)
            if report.freshness.waited == "timed_out":
                self.anomalies.append(f"the report had not passed {receipt} after 5 s")
            as_of = report.totals.as_of
            position = receipt.positions.get(as_of.lane)
            if len(receipt.positions) == 1 and position is not None and as_of.position < position:
                self.anomalies.append(
                    f"read-your-writes: the report passed {receipt} but its totals are as of "
                    f"position {as_of.position}"
                )

    # -- watching --------------------------------------------------------------------------

    def snapshot(self, runtime: Runtime, elapsed: float, phase: str) -> Snapshot:
        report = self.shop.report.report()
        for row in report.rows:
            self.identity_checks += 1
            self.identity_breaks += bool(identity_violations(row))
        statistics = runtime.statistics()
        for lane in statistics:
            name = lane.processor
            self.max_lag_events[name] = max(self.max_lag_events.get(name, 0), lane.lag_events)
            self.max_lag_seconds[name] = max(self.max_lag_seconds.get(name, 0.0), lane.lag_seconds)
        return Snapshot(
            elapsed,
            self.settings,
            phase,
            replace(self.counters),
            report,
            statistics,
            self.identity_checks,
            self.identity_breaks,
        )

    def verify(self, elapsed: float, drain_seconds: float) -> Verdict:
        rows = self.shop.report.rows()
        totals = self.shop.report.totals()
        problems = self.truth.violations(rows, totals)
        problems += ConsistentCutAudit(REPORT_VIEWS)(self.store)
        problems += self.anomalies
        problems += tender_violations(self.store, totals)
        problems += numbering_violations(self.store)
        problems += self.payments.problems(self.terminal, self.gross)
        problems += self.tills.problems(self.store)
        if self.identity_breaks:
            problems.append(
                f"{self.identity_breaks} of {self.identity_checks} rows read during the run "
                "broke received − sold + returned + adjustments = stock left"
            )
        short = sorted(
            (row for row in rows if row.open_shortfall > 0), key=lambda row: -row.open_shortfall
        )
        return Verdict(
            replace(self.counters),
            problems,
            len(rows),
            sum(row.units_oversold for row in rows),
            sum(row.open_shortfall for row in rows),
            [row.name or row.product_id for row in short],
            elapsed,
            drain_seconds,
            dict(self.max_lag_events),
            dict(self.max_lag_seconds),
            list(self.refusals),
            replace(self.payments),
            self.tills.z_reports(self.store),
        )

    # -- the run ---------------------------------------------------------------------------

    async def run(self, on_tick: Callable[[Snapshot], None] | None = None) -> Verdict:
        self._closing = asyncio.Event()
        async with self.shop.runtime() as runtime:
            await asyncio.to_thread(self.seed_catalog)
            await asyncio.to_thread(self.tills.open_all, self.shop.sale)
            started = time.monotonic()

            def tick(phase: str) -> None:
                if on_tick is not None:
                    on_tick(self.snapshot(runtime, time.monotonic() - started, phase))

            async def watch(tasks: list[asyncio.Task[None]], phase: str) -> None:
                """Tick until ``tasks`` are done; the first failure is raised at once."""
                while not all(task.done() for task in tasks):
                    tick(phase)
                    await asyncio.wait(tasks, timeout=TICK)
                    for task in tasks:
                        if task.done() and not task.cancelled() and task.exception():
                            task.result()

            stop_at = asyncio.get_running_loop().time() + self.settings.duration
            tills = [
                asyncio.create_task(self.till(number, stop_at))
                for number in range(1, self.settings.tills + 1)
            ]
            back_office = [
                asyncio.create_task(self.truck()),
                asyncio.create_task(self.returns_desk()),
                asyncio.create_task(self.reader(runtime)),
            ]
            try:
                await watch(tills, "selling")
                self.counters.selling_seconds = time.monotonic() - started
                self._closing.set()
                await watch(back_office, "closing")  # deliveries on the way arrive
                drain_started = time.monotonic()
                await watch([asyncio.create_task(runtime.drain(timeout=120))], "draining")
                drain_seconds = time.monotonic() - drain_started
                await asyncio.to_thread(self.tills.close_all, self.store, self.shop.sale)
                await watch([asyncio.create_task(runtime.drain(timeout=120))], "cash-up")
            finally:
                self._closing.set()
                for task in [*tills, *back_office]:
                    task.cancel()
                await asyncio.gather(*tills, *back_office, return_exceptions=True)
        tick("done")  # the processors have stopped: the last view shows where they stand
        return self.verify(time.monotonic() - started, drain_seconds)


async def run_shop_demo(
    store: EventStore,
    settings: ShopDemoSettings,
    on_tick: Callable[[Snapshot], None] | None = None,
) -> Verdict:
    """Seed the catalog, run tills, the truck, the returns desk and the processors for
    ``settings.duration`` seconds, drain, then verify the report. ``store`` must be new."""
    return await ShopDemo(store, settings).run(on_tick)
