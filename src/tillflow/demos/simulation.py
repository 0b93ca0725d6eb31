"""The shop under the deterministic simulator: random checkouts (some retried), deliveries,
stock counts, reorder points, returns and catalog changes, interleaved with Inventory's and a
report's steps and with crashes; the report's properties checked after every step, the truth
and Inventory's low-stock alerts (:mod:`tillflow.shop.inventory.audit`) after the end.

Tills pay with cash, cards and both through a simulated terminal — an external system
that outlives every crash. Some cards are declined (no sale; some baskets are then settled
in cash, some walk away), and some tills crash between the terminal's approval and the
recorded sale: the retry must find that approval, never charging twice. At the end, tenders,
gross line totals and the report's revenue must agree, per till and in all.

Every few commands a till changes shift (:mod:`tillflow.demos.till_shifts`): its session is
closed with a count and the next opened. After every step the cash-up is checked against the
log at its checkpoint (:class:`~tillflow.shop.tills.audit.CashUpAudit`), and at the end each
Z report's difference against the count made. ``cash_up="handed"`` runs a cash-up that
forgets the change (negative control, which the checks must catch).

``design`` picks the report: ``barrier`` (the shop's own), ``chain``, ``eventual`` or
``naive`` and ``trap`` (negative controls, which the checks must catch). ``leasing`` runs
Inventory and the report on several simulated workers sharing the lanes by leases.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from tillflow.demos.till_shifts import TillShifts
from tillflow.engine import EventStore, Processor, Receipt, TillflowError
from tillflow.engine.log_tail import LastAnswer, passed_by
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CardDeclined
from tillflow.shop.inventory.audit import low_stock_violations
from tillflow.shop.inventory.commands import CountStock, ReceiveStock, SetReorderPoint
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.inventory.stock import StockLevel
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.reporting.audit import (
    ConsistentCutAudit,
    EventualAudit,
    IdentityAudit,
    decode_rows,
    read_rows,
    read_totals,
)
from tillflow.shop.reporting.designs import (
    CHAIN_VIEWS,
    EVENTUAL_VIEWS,
    NAIVE_VIEWS,
    TRAP_VIEWS,
    chain_processor,
    eventual_processor,
    naive_processor,
    trap_processor,
)
from tillflow.shop.reporting.projection import REPORT_VIEWS, ReportViews, reporting_processor
from tillflow.shop.reporting.rows import ProductRow
from tillflow.shop.reporting.sales import SalesAudit
from tillflow.shop.reporting.tender_audit import tally_tenders, tender_violations
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductTaxRate,
    Checkout,
    DefineTaxRate,
    LineRequest,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import CARD, CASH, Tender
from tillflow.shop.tills.audit import CashUpAudit
from tillflow.shop.tills.designs import handed_cash_up_processor
from tillflow.shop.tills.projection import tills_processor
from tillflow.testing import Leasing, SimulationResult, simulate

Design = Literal["barrier", "chain", "eventual", "naive", "trap"]
CashUpDesign = Literal["shop", "handed"]
StockChange = ReceiveStock | CountStock | SetReorderPoint
DESIGNS: tuple[Design, ...] = ("barrier", "chain", "eventual", "naive", "trap")
PRODUCTS = ("apple", "bread", "cheese", "dates")
BROKE = "card-broke"
"""The card reference the simulated terminal declines."""


class TillCrashed(Exception):
    """The till's process died between the terminal's approval and the recorded sale."""


RATES = ("standard", "reduced", "zero", "super")
"""The default table's rates and one a manager adds (a product may move to it once defined)."""


@dataclass
class _Clock:
    """A clock that ticks one second per reading: no wall time in a simulation."""

    now: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class ShopScenario:
    """One simulated shop (a fresh one per seed)."""

    design: Design = "barrier"
    truth: ShopTruth = field(default_factory=ShopTruth)
    checkouts: list[tuple[Checkout, CheckedOut]] = field(default_factory=list)
    returned: dict[str, dict[str, int]] = field(default_factory=dict)
    commands: int = 0
    clock: _Clock = field(default_factory=_Clock)
    stock_changes: list[tuple[StockChange, Receipt]] = field(default_factory=list)
    """Every delivery, count and keyed reorder point recorded, with the receipt its first
    call answered."""
    broken_promises: list[str] = field(default_factory=list)
    terminal: SimulatedTerminal = field(
        default_factory=lambda: SimulatedTerminal(decline_cards={BROKE}, timeout_every=5)
    )
    """The card terminal: outside the shop, it survives every crash; the answer to every
    fifth authorization is lost on its way back (the till looks it up)."""
    payments: dict[str, int] = field(default_factory=dict)
    """Seen during the run: paid by card, declined, crashed after approval, in cash."""
    cash_up: CashUpDesign = "shop"
    shifts: TillShifts = field(default_factory=TillShifts)
    _as_of_answer: LastAnswer = field(default_factory=LastAnswer, init=False, repr=False)

    def __post_init__(self) -> None:
        views = self.views
        if self.design == "eventual":
            self.audits: list[Callable[[EventStore], list[str]]] = [
                EventualAudit(views, "reporting-eventual")
            ]
        elif self.design in ("naive", "trap"):
            self.audits = [IdentityAudit(views)]
        else:
            self.audits = [ConsistentCutAudit(views)]  # the identity and totals included
            if views.sales is not None:
                self.audits.append(SalesAudit(self.report_name, views.sales))
        self.audits.append(CashUpAudit())

    @property
    def views(self) -> ReportViews:
        return {
            "barrier": REPORT_VIEWS,
            "chain": CHAIN_VIEWS,
            "eventual": EVENTUAL_VIEWS,
            "naive": NAIVE_VIEWS,
            "trap": TRAP_VIEWS,
        }[self.design]

    @property
    def report_name(self) -> str:
        return "reporting" if self.design == "barrier" else f"reporting-{self.design}"

    @property
    def torn(self) -> int:
        """Moments a row showed a torn checkout (eventual design only)."""
        return sum(audit.torn for audit in self.audits if isinstance(audit, EventualAudit))

    # -- the Scenario protocol -------------------------------------------------------------

    def processors(self, store: EventStore) -> list[Processor]:
        report = {
            "barrier": lambda: reporting_processor(batch_size=3),
            "chain": chain_processor,
            "eventual": eventual_processor,
            "naive": naive_processor,
            "trap": trap_processor,
        }[self.design]()
        cash_up = tills_processor(2) if self.cash_up == "shop" else handed_cash_up_processor()
        return [inventory_processor(batch_size=2), report, cash_up]

    def command(self, rng: random.Random, store: EventStore) -> str:
        done = self._command(rng, store)
        if not self.shifts.due(self.commands):
            return done
        sale = SaleService(store, self.clock, self.terminal)
        return f"{done}; {self.shifts.change(store, sale, self.commands)}"

    def _command(self, rng: random.Random, store: EventStore) -> str:
        sale = SaleService(store, self.clock, self.terminal)
        inventory = InventoryService(store)
        self.commands += 1
        if self.commands == 1:
            for number, product_id in enumerate(PRODUCTS):
                price, rate = 100 + 25 * number, RATES[number % 3]
                sale.add_product(AddProduct(product_id, product_id.title(), price, tax_rate=rate))
            return f"catalog of {len(PRODUCTS)} products"
        roll = rng.random()
        try:
            if roll < 0.42:
                return self._checkout(rng, store, sale)
            if roll < 0.70 and self.stock_changes and rng.random() < 0.15:
                return self._retry_stock_change(rng, inventory)
            if roll < 0.60:
                product_id, quantity = rng.choice(PRODUCTS), rng.randint(1, 6)
                delivery = ReceiveStock(product_id, quantity, f"d{self.commands}")
                self.stock_changes.append((delivery, inventory.receive(delivery)))
                self.truth.received(product_id, quantity)
                return f"receive {quantity} {product_id}"
            if roll < 0.70:
                product_id, level = rng.choice(PRODUCTS), rng.randint(0, 6)
                count = CountStock(product_id, level, f"n{self.commands}")
                self.stock_changes.append((count, inventory.count(count)))
                checkpoints = {
                    lane: store.checkpoint("inventory", lane) for lane in range(store.lane_count)
                }
                self.truth.counted(product_id, level, checkpoints)
                return f"count {product_id} = {level} (inventory at {checkpoints})"
            if roll < 0.88:
                return self._return(rng, store, sale)
            if roll < 0.93:
                return self._reorder_point(rng, inventory)
            product_id, pick = rng.choice(PRODUCTS), rng.random()
            if pick < 0.4:
                sale.reprice_product(RepriceProduct(product_id, rng.randint(50, 300)))
                return f"reprice {product_id}"
            if pick < 0.55:  # refused while "super" is not defined yet
                rate = rng.choice(RATES)
                sale.change_tax_rate(ChangeProductTaxRate(product_id, rate))
                return f"tax {product_id} at {rate}"
            if pick < 0.7:
                rate, points = rng.choice(RATES), rng.choice((0, 500, 1000, 2000, 2500))
                sale.define_tax_rate(DefineTaxRate(rate, points))
                return f"rate {rate} = {points} bp"
            sale.rename_product(RenameProduct(product_id, f"{product_id.title()} {self.commands}"))
            return f"rename {product_id}"
        except TillflowError as refusal:  # a refusal is an answer, not a failure
            return f"refused: {refusal}"

    def _checkout(self, rng: random.Random, store: EventStore, sale: SaleService) -> str:
        if self.checkouts and rng.random() < 0.1:  # a till retries a checkout
            command, _ = rng.choice(self.checkouts)
            sale.checkout(command)
            return f"retry checkout {command.checkout_id}"
        lines = [
            LineRequest(rng.choice(PRODUCTS), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))
        ]
        command = Checkout(f"c{self.commands}", f"till-{rng.randint(1, 3)}", lines)
        prices = sale.catalog().products
        total = sum(prices[str(line.product_id)].price * line.quantity for line in lines)
        paying, paid = self._pay(rng, sale, store, command, total)
        if paying is None:
            return paid
        command = paying
        receipt = sale.checkout(command)
        [recorded] = store.read_stream(checkout_stream(command.checkout_id), 0, 1)
        checked_out = recorded.decode(CheckedOut)
        self.truth.checked_out(checked_out, receipt)
        self.checkouts.append((command, checked_out))
        summary = ", ".join(f"{line.quantity} {line.product_id}" for line in checked_out.lines)
        if self.terminal.charges_for(command.checkout_id) > 1:
            self.broken_promises.append(f"checkout {command.checkout_id}: charged twice")
        return f"checkout {command.checkout_id} ({paid}): {summary}"

    def _pay(
        self,
        rng: random.Random,
        sale: SaleService,
        store: EventStore,
        command: Checkout,
        total: int,
    ) -> tuple[Checkout | None, str]:
        """The command to record, with its tenders, and how it is paid; ``None`` when the
        customer walked away after a declined card. A till that crashes after the approval
        is retried here; a decline must leave no sale, and a crash nothing recorded."""
        roll = rng.random()
        if roll < 0.3 or total == 0:
            return command, "exact cash"
        if roll < 0.5:
            handed = total + rng.choice((0, 5, 50, 1000))
            return msgspec.structs.replace(command, tenders=[Tender(CASH, handed)]), "cash"
        if roll < 0.65 and total > 1:
            card = rng.randint(1, total - 1)
            split = [Tender(CARD, card, "card-ok"), Tender(CASH, total - card + 20)]
            return msgspec.structs.replace(command, tenders=split), "split"
        if roll < 0.8:
            return msgspec.structs.replace(
                command, tenders=[Tender(CARD, total, "card-ok")]
            ), "card"
        if roll < 0.9:
            return self._crash_after_approval(sale, store, command, total)
        declined = msgspec.structs.replace(command, tenders=[Tender(CARD, total, BROKE)])
        self._no_sale(sale, store, declined, CardDeclined, "declined")
        if rng.random() < 0.5:
            return None, f"card declined, {command.checkout_id} walked away"
        cash = [Tender(CASH, total)]
        return msgspec.structs.replace(command, tenders=cash), "cash after a declined card"

    def _crash_after_approval(
        self, sale: SaleService, store: EventStore, command: Checkout, total: int
    ) -> tuple[Checkout, str]:
        paid = msgspec.structs.replace(command, tenders=[Tender(CARD, total, "card-ok")])
        self.terminal.interrupt_next(TillCrashed(command.checkout_id))
        self._no_sale(sale, store, paid, TillCrashed, "crashed")
        return paid, "card, retried after a crash between approval and recording"

    def _no_sale(
        self,
        sale: SaleService,
        store: EventStore,
        command: Checkout,
        expected: type[Exception],
        what: str,
    ) -> None:
        """Ring ``command`` up where it must end in ``expected`` (a declined card, a crash
        after the approval) with no sale recorded; counts ``what`` happened."""
        try:
            sale.checkout(command)
        except expected:
            pass
        else:
            self.broken_promises.append(f"checkout {command.checkout_id}: not {what}, sold")
        if store.stream_version(checkout_stream(command.checkout_id)):
            self.broken_promises.append(f"checkout {command.checkout_id}: {what}, yet recorded")
        self.payments[what] = self.payments.get(what, 0) + 1

    def _return(self, rng: random.Random, store: EventStore, sale: SaleService) -> str:
        if not self.checkouts:
            return "no checkout to return against"
        command, checked_out = rng.choice(self.checkouts)
        line = rng.choice(checked_out.lines)
        done = self.returned.setdefault(command.checkout_id, {})
        if done.get(line.product_id, 0) >= line.quantity:
            return f"nothing left to return on {command.checkout_id}"
        return_id = f"r{self.commands}"
        receipt = sale.return_items(
            ReturnItems(return_id, command.checkout_id, [LineRequest(line.product_id, 1)])
        )
        done[line.product_id] = done.get(line.product_id, 0) + 1
        recorded = store.read_stream(checkout_stream(command.checkout_id))[-1]
        self.truth.returned(recorded.decode(ItemsReturned), receipt)
        return f"return 1 {line.product_id} of {command.checkout_id}"

    def _retry_stock_change(self, rng: random.Random, inventory: InventoryService) -> str:
        """A manager's client retries a delivery or count whose answer it lost: the retry
        must answer exactly what the first call did and change nothing."""
        command, first = rng.choice(self.stock_changes)
        if isinstance(command, ReceiveStock):
            again, key = inventory.receive(command), command.delivery_id
        elif isinstance(command, CountStock):
            again, key = inventory.count(command), command.count_id
        else:
            again, key = inventory.set_reorder_point(command), command.change_id
        if again != first:
            self.broken_promises.append(f"retry of {key} answered {again}, first call {first}")
        return f"retry {key} of {command.product_id}"

    def _reorder_point(self, rng: random.Random, inventory: InventoryService) -> str:
        """A manager sets a reorder point near the shop's small stock levels (half keyed)."""
        product_id, point = rng.choice(PRODUCTS), rng.randint(0, 6)
        keyed = rng.random() < 0.5
        change = SetReorderPoint(product_id, point, f"p{self.commands}" if keyed else None)
        receipt = inventory.set_reorder_point(change)
        if keyed:
            self.stock_changes.append((change, receipt))
        return f"reorder point {product_id} = {point}"

    def _low_stock(self, store: EventStore, rows: list[ProductRow]) -> list[str]:
        """One ``LowStock`` per crossing in every product's stream; with the shop's report,
        its reorder point, low spell and alert count per row agree with Inventory's."""
        problems = low_stock_violations(store, list(PRODUCTS))
        if self.design != "barrier":
            return problems
        for row in rows:
            events = store.read_stream(stock_stream(row.product_id))
            level = StockLevel.after(row.product_id, events[-1] if events else None)
            alerts = sum(event.type == "LowStock" for event in events)
            shown = (row.reorder_point, row.low_since is not None, row.low_alerts)
            truth = (level.reorder_point, level.low, alerts)
            if shown != truth:
                problems.append(
                    f"{row.product_id}: the report's (reorder point, low, alerts) is {shown}, "
                    f"Inventory's {truth}"
                )
        return problems

    def _as_of_reaches_waited_receipts(self, store: EventStore) -> list[str]:
        """Read-your-writes on a stock change: once the report has passed a delivery's or
        count's receipt (what ``wait_for`` waits for), the product's row is as of at least
        the stream version that receipt names."""
        passed = passed_by(store, self.report_name)
        raw = list(store.view_rows(self.views.products))
        inputs = (store, passed, raw, len(self.stock_changes))
        return self._as_of_answer.of(inputs, lambda: self._as_of_problems(passed, raw))

    def _as_of_problems(
        self, passed: dict[int, int], raw_rows: list[tuple[str, bytes]]
    ) -> list[str]:
        name = self.report_name
        rows = {row.product_id: row for row in decode_rows(raw_rows)}
        problems = []
        for command, receipt in self.stock_changes:
            if any(passed[lane] < position for lane, position in receipt.positions.items()):
                continue
            version = receipt.streams[stock_stream(command.product_id)]
            row = rows.get(command.product_id)
            seen = row.as_of.version if row is not None else 0
            if seen < version:
                problems.append(
                    f"{name} has passed the receipt {receipt.positions} of a change to "
                    f"stock-{command.product_id} at version {version}, but its row is as of "
                    f"version {seen}"
                )
        return problems

    def check(self, store: EventStore) -> list[str]:
        problems = [problem for audit in self.audits for problem in audit(store)]
        problems += self.broken_promises
        if self.design in ("barrier", "chain"):
            problems += self._as_of_reaches_waited_receipts(store)
        return problems

    def _charges(self, store: EventStore) -> list[str]:
        """The terminal charged (and refunded) exactly what the recorded card tenders say:
        a retry that charged again shows here, whatever key it used."""
        tally = tally_tenders(store)
        charged, refunded = self.terminal.charged, self.terminal.refunded
        if (tally.by_card, tally.refunded_to_cards) == (charged, refunded):
            return []
        return [
            f"the terminal charged {charged} and refunded {refunded}; the card tenders "
            f"recorded {tally.by_card} and their refunds {tally.refunded_to_cards}"
        ]

    def check_final(self, store: EventStore) -> list[str]:
        rows = read_rows(store, self.views)
        totals = read_totals(store, self.views)
        return [
            *self.truth.violations(rows, totals),
            *tender_violations(store, totals),
            *self._charges(store),
            *self._low_stock(store, rows),
            *self.shifts.violations(store),
            *(numbering_violations(store) if self.cash_up == "shop" else ()),
        ]


def simulate_shop(
    design: Design, seed: int, steps: int = 120, leasing: Leasing | None = None
) -> SimulationResult:
    """One seeded run of the shop with ``design`` (on leased workers with ``leasing``);
    replay a failure with the same seed and ``leasing``."""
    return simulate(ShopScenario(design), seed, steps, registry=REGISTRY, leasing=leasing)


def explore_shop(
    design: Design,
    seeds: range,
    steps: int = 120,
    stop_after: int | None = None,
    leasing: Leasing | None = None,
) -> list[SimulationResult]:
    """The failing runs among ``seeds`` (at most ``stop_after`` of them)."""
    failures = []
    for seed in seeds:
        result = simulate_shop(design, seed, steps, leasing)
        if not result.ok:
            failures.append(result)
            if stop_after is not None and len(failures) >= stop_after:
                break
    return failures
