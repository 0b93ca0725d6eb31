"""The report's projection on its own (``tillflow.shop.reporting.projection``), on the memory
store: Inventory's and the report's processors are stepped by hand, so every interleaving a
test needs — a delivery landing between a checkout's append and Inventory's handling of it —
is written out rather than hoped for.

Each row is checked against figures written out by hand, and where the order matters, after
every single step of the report against Inventory's own stream (``audit.fold``) and the
identity ``received − sold + returned + adjustments == stock left``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import msgspec
import pytest

from tillflow.engine import (
    HandlerFailed,
    LaneProcessor,
    MemoryEventStore,
    Processor,
    RecordedEvent,
    State,
)
from tillflow.engine.lanes import lane_of
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.inventory.processor import handle, inventory_processor, take
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.reporting.audit import (
    figures_of,
    fold,
    identity_violations,
    totals_violations,
)
from tillflow.shop.reporting.designs import TRAP_VIEWS, trap_processor
from tillflow.shop.reporting.projection import (
    REPORT_VIEWS,
    MissingEffects,
    ReportViews,
    reporting_processor,
)
from tillflow.shop.reporting.rows import TOTALS_KEY, AsOf, ProductRow, Totals
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import checkout_stream
from tillflow.shop.sale.service import SaleService


class Bench:
    """A shop on the memory store whose processors move only when a test says so. The
    report scans one position per step, so a test can look at the row after each event."""

    def __init__(
        self,
        report: Processor | None = None,
        views: ReportViews = REPORT_VIEWS,
        inventory: Processor | None = None,
        lanes: int = 1,
    ) -> None:
        self.store = MemoryEventStore(lane_count=lanes, registry=REGISTRY)
        self.sale = SaleService(self.store)
        self.stock = InventoryService(self.store)
        self.views = views
        report = report if report is not None else reporting_processor(batch_size=1)
        assert report.batch_size == 1, "report_steps looks at the row after each position"
        inventory = inventory if inventory is not None else inventory_processor()
        self.inventory_lanes = [LaneProcessor(self.store, inventory, n) for n in range(lanes)]
        self.report_lanes = [LaneProcessor(self.store, report, n) for n in range(lanes)]

    def run_inventory(self) -> None:
        for lane in self.inventory_lanes:
            while lane.step().progressed:
                pass

    def report_steps(self, lane: int = 0) -> Iterator[RecordedEvent | None]:
        """Step the report on ``lane`` one position at a time; yield the event it handled
        (``None`` for a position it only scanned) after each step."""
        processor = self.report_lanes[lane]
        while True:
            before = processor.checkpoint()
            if not processor.step().progressed:
                return
            [event] = self.store.read(lane, before, before + 1)
            handled = processor.processor.types
            yield event if handled is None or event.type in handled else None

    def run_report(self, lane: int = 0) -> None:
        for _ in self.report_steps(lane):
            pass

    def run(self) -> None:
        self.run_inventory()
        for lane in range(len(self.report_lanes)):
            self.run_report(lane)

    def row(self, product_id: str) -> ProductRow:
        raw = self.store.read_view(self.views.products, product_id)
        assert raw is not None, f"no row for {product_id}"
        return msgspec.json.decode(raw, type=ProductRow)

    def rows(self) -> list[ProductRow]:
        decoder = msgspec.json.Decoder(ProductRow)
        return [decoder.decode(raw) for _, raw in self.store.view_rows(self.views.products)]

    def totals(self) -> Totals:
        raw = self.store.read_view(self.views.totals, TOTALS_KEY)
        return Totals() if raw is None else msgspec.json.decode(raw, type=Totals)

    def stream(self, product_id: str) -> list[RecordedEvent]:
        return self.store.read_stream(stock_stream(product_id))

    def event(self, product_id: str, version: int) -> RecordedEvent:
        return self.stream(product_id)[version - 1]

    def cut_problems(self) -> list[str]:
        """What is wrong with the rows now: a row that is not Inventory's stream folded to
        its version, or whose received column does not explain its stock."""
        found: list[str] = []
        for row in self.rows():
            found += identity_violations(row)
            truth = fold(self.stream(row.product_id)[: row.as_of.version])
            if figures_of(row) != truth:
                found.append(f"{row.product_id}: {figures_of(row)} != {truth}")
        return found


def as_of(event: RecordedEvent) -> AsOf:
    return AsOf(event.lane, event.position, event.recorded_at, event.version)


def checkout(bench: Bench, checkout_id: str, **lines: int) -> None:
    requests = [LineRequest(product, quantity) for product, quantity in lines.items()]
    bench.sale.checkout(Checkout(checkout_id, "till-1", requests))


@pytest.fixture
def bench() -> Bench:
    shop = Bench()
    shop.sale.add_product(AddProduct("apple", "Apple", 120))
    shop.sale.add_product(AddProduct("bread", "Bread", 250))
    return shop


# -- a checkout ------------------------------------------------------------------------------


def test_a_checkout_row_is_inventorys_product_taken(bench: Bench) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    checkout(bench, "c-1", apple=4)
    bench.run()
    row = bench.row("apple")
    taken = bench.event("apple", 2)
    assert taken.type == "ProductTaken"
    assert (row.name, row.price, row.discontinued) == ("Apple", 120, False)
    assert (row.units_sold, row.revenue, row.received, row.stock_left) == (4, 480, 10, 6)
    assert (row.open_shortfall, row.units_oversold, row.units_returned) == (0, 0, 0)
    assert row.as_of == as_of(taken)  # Inventory's version and its log position
    assert bench.cut_problems() == []


def test_the_report_waits_for_inventory_before_a_checkout(bench: Bench) -> None:
    checkout(bench, "c-1", apple=1)
    report = bench.report_lanes[0]
    assert not report.step().progressed
    assert (report.state, report.waiting_on) == (State.WAITING, "inventory")
    assert bench.rows() == [] and bench.totals() == Totals()
    bench.run()
    assert bench.row("apple").units_sold == 1


def test_a_checkout_of_several_products_moves_each_row_and_counts_once(bench: Bench) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    bench.stock.receive(ReceiveStock("bread", 3))
    checkout(bench, "c-1", apple=2, bread=1)
    bench.run()
    apple, bread = bench.row("apple"), bench.row("bread")
    assert (apple.units_sold, apple.revenue, apple.stock_left) == (2, 240, 8)
    assert (bread.units_sold, bread.revenue, bread.stock_left) == (1, 250, 2)
    assert (apple.as_of, bread.as_of) == (
        as_of(bench.event("apple", 2)),
        as_of(bench.event("bread", 2)),
    )
    totals = bench.totals()
    assert (totals.checkouts, totals.units_sold, totals.revenue) == (1, 3, 490)


# -- catching up a product's stream ---------------------------------------------------------


def _delivery_inside_a_checkout(bench: Bench) -> None:
    """Apple: 10 delivered and reported (v1); checkout c-1 takes 3; a delivery of 5 is
    recorded (v2) after c-1's append but before Inventory handles c-1, so Inventory's
    ``ProductTaken`` (v3) already includes it: stock after 10 + 5 − 3 = 12."""
    bench.stock.receive(ReceiveStock("apple", 10))
    bench.run()
    checkout(bench, "c-1", apple=3)
    bench.stock.receive(ReceiveStock("apple", 5))
    bench.run_inventory()
    taken = bench.event("apple", 3)
    assert (taken.type, taken.payload()["stock_after"]) == ("ProductTaken", 12)


def test_a_checkout_catches_up_a_delivery_inventory_recorded_before_it(bench: Bench) -> None:
    _delivery_inside_a_checkout(bench)
    seen: list[tuple[str, int]] = []
    for event in bench.report_steps():
        if event is not None:
            seen.append((event.type, bench.row("apple").as_of.version))
        assert bench.cut_problems() == []  # after every step, not only at the end
    # the checkout moves the row through v2 (the delivery) to v3; the delivery is then a no-op
    assert seen == [("CheckedOut", 3), ("StockReceived", 3)]
    row = bench.row("apple")
    assert (row.received, row.units_sold, row.stock_left) == (15, 3, 12)
    assert row.as_of == as_of(bench.event("apple", 3))


def test_the_trap_copies_stock_its_received_column_does_not_explain() -> None:
    """Negative control for the test above: the same schedule through the ``trap`` design
    (the barrier without catching up) shows 12 left of 10 received − 3 sold."""
    bench = Bench(dataclasses.replace(trap_processor(), batch_size=1), TRAP_VIEWS)
    bench.sale.add_product(AddProduct("apple", "Apple", 120))
    _delivery_inside_a_checkout(bench)
    problems: list[str] = []
    for _ in bench.report_steps():
        problems += bench.cut_problems()
    assert any("received 10 − sold 3" in problem and "12" in problem for problem in problems)


def test_a_checkout_reads_the_rest_of_the_stream_in_version_order(bench: Bench) -> None:
    """Several of the product's changes between the row and the checkout's effect: a
    delivery, a count and another checkout. Each step leaves a consistent cut and versions
    never go back."""
    bench.stock.receive(ReceiveStock("apple", 10))
    bench.run()
    checkout(bench, "c-1", apple=2)  # handled by Inventory after the next three
    bench.stock.receive(ReceiveStock("apple", 4))  # v2
    bench.stock.count(CountStock("apple", 13))  # v3: difference −1
    bench.run_inventory()  # v4: c-1 taken, 13 − 2 = 11
    checkout(bench, "c-2", apple=1)
    bench.run_inventory()  # v5: 10
    versions = [bench.row("apple").as_of.version]
    for _ in bench.report_steps():
        versions.append(bench.row("apple").as_of.version)
        assert bench.cut_problems() == []
    assert versions == sorted(versions) and versions[-1] == 5
    row = bench.row("apple")
    assert (row.received, row.count_adjustments, row.units_sold, row.stock_left) == (14, -1, 3, 10)


def test_catch_up_reads_across_lanes() -> None:
    """With two lanes the checkout and its product's stream sit on different lanes: the
    report on the checkout's lane moves the row past a delivery the report on the other
    lane has not handled yet, and that one then changes nothing."""
    bench = Bench(lanes=2)
    product = next(f"p{n}" for n in range(50) if lane_of(stock_stream(f"p{n}"), 2) == 1)
    checkout_id = next(f"c{n}" for n in range(50) if lane_of(checkout_stream(f"c{n}"), 2) == 0)
    bench.sale.add_product(AddProduct(product, "Pear", 90))
    bench.stock.receive(ReceiveStock(product, 10))
    bench.run()
    checkout(bench, checkout_id, **{product: 3})
    bench.stock.receive(ReceiveStock(product, 5))
    bench.run_inventory()
    bench.run_report(0)
    row = bench.row(product)
    assert (row.received, row.units_sold, row.stock_left, row.as_of.version) == (15, 3, 12, 3)
    bench.run_report(1)
    assert bench.row(product) == row
    assert bench.cut_problems() == []


# -- returns, counts, shortfalls -------------------------------------------------------------


def test_a_return_puts_units_back_and_refunds(bench: Bench) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    checkout(bench, "c-1", apple=4)
    bench.sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))
    bench.run()
    row = bench.row("apple")
    back = bench.event("apple", 3)
    assert back.type == "ProductReturned"
    assert (row.units_sold, row.units_returned, row.revenue, row.stock_left) == (4, 1, 360, 7)
    assert row.as_of == as_of(back)
    totals = bench.totals()
    assert (totals.checkouts, totals.returns, totals.units_returned, totals.revenue) == (
        1,
        1,
        1,
        360,
    )
    assert bench.cut_problems() == []


def test_a_count_records_its_difference(bench: Bench) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    checkout(bench, "c-1", apple=3)
    bench.run()
    bench.stock.count(CountStock("apple", 5))  # 7 expected, 5 found: −2
    bench.run()
    row = bench.row("apple")
    assert (row.count_adjustments, row.stock_left, row.as_of.version) == (-2, 5, 3)
    bench.stock.count(CountStock("apple", 9))  # +4
    bench.run()
    row = bench.row("apple")
    assert (row.count_adjustments, row.stock_left, row.as_of.version) == (2, 9, 4)
    assert row.as_of == as_of(bench.event("apple", 4))
    assert identity_violations(row) == []


def test_a_shortfall_is_open_until_a_delivery(bench: Bench) -> None:
    checkout(bench, "c-1", apple=3)  # nothing on the shelf: sold anyway
    bench.run()
    row = bench.row("apple")
    apology = bench.event("apple", 2)
    assert apology.type == "StockShortfall"
    assert (row.units_sold, row.stock_left, row.open_shortfall, row.units_oversold) == (
        3,
        -3,
        3,
        3,
    )
    assert row.as_of == as_of(apology)
    bench.stock.receive(ReceiveStock("apple", 5))
    bench.run()
    row = bench.row("apple")
    assert (row.received, row.stock_left, row.open_shortfall, row.units_oversold) == (5, 2, 0, 3)
    assert [e.type for e in bench.stream("apple")][2:] == ["StockReceived", "ShortfallResolved"]
    assert row.as_of == as_of(bench.event("apple", 4))  # the delivery's resolution
    assert bench.cut_problems() == []


def test_a_return_that_resolves_a_shortfall_moves_the_row_to_the_resolution(
    bench: Bench,
) -> None:
    checkout(bench, "c-1", apple=3)
    bench.run()
    bench.sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 3)]))
    bench.run()
    resolved = bench.event("apple", 4)
    assert resolved.type == "ShortfallResolved"
    row = bench.row("apple")
    assert (row.stock_left, row.open_shortfall, row.units_oversold, row.units_returned) == (
        0,
        0,
        3,
        3,
    )
    assert row.as_of == as_of(resolved)
    assert bench.cut_problems() == []


def test_a_count_that_resolves_a_shortfall(bench: Bench) -> None:
    checkout(bench, "c-1", apple=2)
    bench.stock.receive(ReceiveStock("apple", 1))  # after c-1's append: Inventory sees it
    bench.run()
    row = bench.row("apple")
    assert (row.received, row.stock_left, row.open_shortfall) == (1, -1, 1)
    bench.stock.count(CountStock("apple", 4))
    bench.run()
    row = bench.row("apple")
    assert (row.count_adjustments, row.stock_left, row.open_shortfall) == (5, 4, 0)
    resolved = bench.event("apple", 5)
    assert (resolved.type, row.as_of) == ("ShortfallResolved", as_of(resolved))
    assert bench.cut_problems() == []


# -- the catalog -----------------------------------------------------------------------------


def test_catalog_events_set_name_price_and_discontinued_only(bench: Bench) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    checkout(bench, "c-1", apple=2)
    bench.run()
    before = bench.row("apple")
    totals = bench.totals()
    bench.sale.rename_product(RenameProduct("apple", "Green apple"))
    bench.sale.reprice_product(RepriceProduct("apple", 135))
    bench.sale.discontinue_product(DiscontinueProduct("apple"))
    bench.run()
    row = bench.row("apple")
    assert (row.name, row.price, row.discontinued) == ("Green apple", 135, True)
    assert figures_of(row) == figures_of(before) and row.as_of == before.as_of
    assert bench.totals() == totals  # catalog changes are not sales
    assert bench.row("bread") == ProductRow("bread", "Bread", 250)  # never stocked: version 0


# -- totals -----------------------------------------------------------------------------------


def test_totals_count_checkouts_returns_and_net_revenue_as_of_the_last_event(
    bench: Bench,
) -> None:
    bench.stock.receive(ReceiveStock("apple", 10))
    checkout(bench, "c-1", apple=2, bread=1)
    checkout(bench, "c-2", apple=1)
    bench.sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("bread", 1)]))
    last = bench.stock.receive(ReceiveStock("bread", 4))
    bench.run()
    totals = bench.totals()
    assert (totals.checkouts, totals.returns) == (2, 1)
    assert (totals.units_sold, totals.units_returned, totals.revenue) == (4, 1, 360)
    assert totals_violations(bench.rows(), totals) == []
    assert (totals.as_of.lane, totals.as_of.position) == (0, last.positions[0])


# -- Inventory's effects missing -------------------------------------------------------------


def test_a_checkout_without_inventorys_effects_stops_the_report() -> None:
    """An "inventory" that passes checkouts without taking anything: the barrier says the
    effects exist, they do not, and the report refuses to guess (nothing written)."""
    idle = Processor("inventory", handle, types=frozenset({"Nothing"}))
    shop = Bench(inventory=idle)
    shop.sale.add_product(AddProduct("apple", "Apple", 120))
    checkout(shop, "c-1", apple=1)
    shop.run_inventory()
    with pytest.raises(HandlerFailed) as caught:
        shop.run_report()
    cause = caught.value.__cause__
    assert isinstance(cause, MissingEffects)
    [checked_out] = shop.store.read_stream(checkout_stream("c-1"))
    assert cause.event_id in str(cause) and f"position {checked_out.position}" in str(cause)
    assert shop.store.checkpoint("reporting", 0) == checked_out.position - 1
    assert shop.row("apple").units_sold == 0 and shop.totals() == Totals()


def test_a_return_without_inventorys_effects_stops_the_report() -> None:
    takes_only = Processor("inventory", take, types=frozenset({"CheckedOut"}))
    shop = Bench(inventory=takes_only)
    shop.sale.add_product(AddProduct("apple", "Apple", 120))
    checkout(shop, "c-1", apple=2)
    shop.sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))
    shop.run_inventory()
    with pytest.raises(HandlerFailed) as caught:
        shop.run_report()
    assert isinstance(caught.value.__cause__, MissingEffects)
    assert "ItemsReturned" in str(caught.value.__cause__)
    assert shop.totals().returns == 0
