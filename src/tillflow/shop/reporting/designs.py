"""The other report designs of docs/design.md ("Report designs the simulator compares"),
runnable and checked by the same simulator.

* **chain** — the report is fed only by Inventory's events (Sale → Inventory → Inventory's
  events → report): no barrier needed, every row a consistent cut; but a till's receipt
  names the checkout, not Inventory's effects, so read-your-writes needs more.
* **eventual** — no barrier: sales figures straight from ``CheckedOut`` / ``ItemsReturned``,
  stock from Inventory's events, each half stamped with its own *as of*. It converges and
  says truthfully how fresh each half is, but a row can show a sale whose stock effect is not
  in its stock yet (a torn checkout) — the documented trade-off.
* **trap** — the report behind the barrier that forgets to catch a product's stream up
  (docs/design.md, "A trap on the way to consistent cuts"); a second negative control.
* **naive** — the negative control: no barrier and its own stock arithmetic on
  ``CheckedOut``, copying Inventory's level on deliveries and counts. The simulator must
  catch it.
"""

from __future__ import annotations

import msgspec

from tillflow.engine import Processor, RecordedEvent, Session
from tillflow.shop.inventory.events import (
    STOCK_STREAM_PREFIX,
    StockCounted,
    StockReceived,
    StockShortfall,
)
from tillflow.shop.reporting.projection import (
    CATALOG_TYPES,
    SUBSCRIBED,
    BarrierReport,
    ReportViews,
    apply_catalog_event,
    apply_inventory_event,
    catch_up,
    handle_catalog,
    load_row,
    load_totals,
)
from tillflow.shop.reporting.rows import TOTALS_KEY, AsOf, ProductRow, Totals
from tillflow.shop.sale.events import CheckedOut, ItemsReturned

INVENTORY_TYPES = frozenset(
    {
        "ProductTaken",
        "ProductReturned",
        "StockReceived",
        "StockCounted",
        "StockShortfall",
        "ShortfallResolved",
        "ReorderPointSet",
        "LowStock",
    }
)
CHAIN_VIEWS = ReportViews("chain.products", "chain.totals")
EVENTUAL_VIEWS = ReportViews("eventual.products", "eventual.totals")
NAIVE_VIEWS = ReportViews("naive.products", "naive.totals")


def _stamp(totals: Totals, event: RecordedEvent) -> AsOf:
    totals.as_of = AsOf(event.lane, event.position, event.recorded_at)
    return totals.as_of


class ChainReport:
    """Fed by Inventory's events only, in each product's version order."""

    views = CHAIN_VIEWS

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        if event.type in CATALOG_TYPES:
            handle_catalog(event, session, self.views)
            return
        totals = load_totals(session, self.views)
        product_id = event.stream.removeprefix(STOCK_STREAM_PREFIX)
        catch_up(session, self.views, totals, product_id, [event], event.version, True)
        _stamp(totals, event)
        session.put(self.views.totals, TOTALS_KEY, totals)


class EventualRow(ProductRow):
    """A row whose sales half and stock half each say what they reflect."""

    sales_as_of: AsOf = msgspec.field(default_factory=AsOf)


class EventualReport:
    """No barrier. Sales from Sale's events, stock from Inventory's, each with its as-of."""

    views = EVENTUAL_VIEWS

    def _row(self, session: Session, product_id: str) -> EventualRow:
        row: EventualRow | None = session.get(self.views.products, product_id, EventualRow)
        return row if row is not None else EventualRow(product_id)

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        kind = event.type
        if kind in CATALOG_TYPES:
            row = self._row(session, msgspec.json.decode(event.data)["product_id"])
            apply_catalog_event(row, event)
            session.put(self.views.products, row.product_id, row)
            return
        totals = load_totals(session, self.views)
        stamp = _stamp(totals, event)
        if kind == "CheckedOut":
            checked_out = event.decode(CheckedOut)
            totals.checkouts += 1
            for line in checked_out.lines:
                row = self._row(session, line.product_id)
                row.units_sold += line.quantity
                row.revenue += line.line_total
                row.tax += line.tax
                row.sales_as_of = stamp
                totals.units_sold += line.quantity
                totals.sold(line.line_total, line.tax, line.tax_rate, line.basis_points)
                session.put(self.views.products, row.product_id, row)
        elif kind == "ItemsReturned":
            returned = event.decode(ItemsReturned)
            totals.returns += 1
            for back in returned.lines:
                row = self._row(session, back.product_id)
                row.units_returned += back.quantity
                row.revenue -= back.refund
                row.tax -= back.tax
                row.sales_as_of = stamp
                totals.units_returned += back.quantity
                totals.sold(-back.refund, -back.tax, back.tax_rate, back.basis_points)
                session.put(self.views.products, row.product_id, row)
        else:
            self._stock(event, session)
        session.put(self.views.totals, TOTALS_KEY, totals)

    def _stock(self, event: RecordedEvent, session: Session) -> None:
        """Apply the product's stock events in version order (stock half only)."""
        product_id = event.stream.removeprefix(STOCK_STREAM_PREFIX)
        row = self._row(session, product_id)
        if event.version <= row.as_of.version:
            return
        for change in session.store.read_stream(event.stream, row.as_of.version, event.version):
            levels = msgspec.json.decode(change.data)
            if change.type == "StockReceived":
                row.received += change.decode(StockReceived).quantity
            elif change.type == "StockCounted":
                row.count_adjustments += change.decode(StockCounted).difference
            elif change.type == "StockShortfall":
                row.units_oversold += change.decode(StockShortfall).units_short
            row.stock_left = levels["stock_after"]
            row.open_shortfall = levels["short_after"]
            row.as_of = AsOf(change.lane, change.position, change.recorded_at, change.version)
        session.put(self.views.products, product_id, row)


class NaiveReport:
    """The negative control: its own stock arithmetic, no barrier."""

    views = NAIVE_VIEWS

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        kind = event.type
        if kind in CATALOG_TYPES:
            handle_catalog(event, session, self.views)
            return
        totals = load_totals(session, self.views)
        if kind == "CheckedOut":
            totals.checkouts += 1
            for line in event.decode(CheckedOut).lines:
                row = load_row(session, self.views, line.product_id)
                row.units_sold += line.quantity
                row.revenue += line.line_total
                row.tax += line.tax
                row.stock_left -= line.quantity
                totals.units_sold += line.quantity
                totals.sold(line.line_total, line.tax, line.tax_rate, line.basis_points)
                session.put(self.views.products, row.product_id, row)
        elif kind == "ItemsReturned":
            totals.returns += 1
            for back in event.decode(ItemsReturned).lines:
                row = load_row(session, self.views, back.product_id)
                row.units_returned += back.quantity
                row.revenue -= back.refund
                row.tax -= back.tax
                row.stock_left += back.quantity
                totals.units_returned += back.quantity
                totals.sold(-back.refund, -back.tax, back.tax_rate, back.basis_points)
                session.put(self.views.products, row.product_id, row)
        elif kind == "StockReceived":
            received = event.decode(StockReceived)
            row = load_row(session, self.views, received.product_id)
            row.received += received.quantity
            row.stock_left = received.stock_after
            session.put(self.views.products, row.product_id, row)
        elif kind == "StockCounted":
            counted = event.decode(StockCounted)
            row = load_row(session, self.views, counted.product_id)
            row.count_adjustments += counted.difference
            row.stock_left = counted.counted
            session.put(self.views.products, row.product_id, row)
        _stamp(totals, event)
        session.put(self.views.totals, TOTALS_KEY, totals)


def chain_processor() -> Processor:
    return Processor("reporting-chain", ChainReport(), types=INVENTORY_TYPES | CATALOG_TYPES)


def eventual_processor() -> Processor:
    types = INVENTORY_TYPES | CATALOG_TYPES | {"CheckedOut", "ItemsReturned"}
    return Processor("reporting-eventual", EventualReport(), types=types)


def naive_processor() -> Processor:
    types = CATALOG_TYPES | {"CheckedOut", "ItemsReturned", "StockReceived", "StockCounted"}
    return Processor("reporting-naive", NaiveReport(), types=types)


TRAP_VIEWS = ReportViews("trap.products", "trap.totals")


class TrapReport(BarrierReport):
    """The trap of docs/design.md, kept as a second negative control: behind the barrier, but it
    applies a checkout's effects as it finds them, without first catching up the product's
    stream — so a delivery Inventory recorded in between (later in the log) is in the stock
    it copies but not in its ``received``."""

    def _sale(
        self, event: RecordedEvent, session: Session, views: ReportViews, totals: Totals
    ) -> None:
        for effect in session.store.find_by_causation(event.id):
            if not effect.stream.startswith(STOCK_STREAM_PREFIX):
                continue
            row = load_row(session, views, effect.stream.removeprefix(STOCK_STREAM_PREFIX))
            if effect.version > row.as_of.version:
                apply_inventory_event(row, totals, effect)
                session.put(views.products, row.product_id, row)
        if event.type == "CheckedOut":
            totals.checkouts += 1
        else:
            totals.returns += 1


def trap_processor() -> Processor:
    return Processor(
        "reporting-trap", TrapReport(TRAP_VIEWS), types=SUBSCRIBED, after=("inventory",)
    )
