"""The report: a processor declared ``after=["inventory"]``.

It never does stock arithmetic. For a checkout or a return it handles at position *n*, the
barrier guarantees Inventory has handled *n*, so Inventory's effects (``ProductTaken``,
``StockShortfall``, ``ProductReturned``...) exist; it finds them by causation id. Each
product's Inventory stream is the order of truth: a row is moved forward through that
stream's versions, in order — catching up on a delivery or count that Inventory recorded in
between but the log shows later — so every figure of a row comes from the same version.

::

    CheckedOut n ──(barrier: inventory ≥ n)──► effects of n by causation id
                                               └─► per product: apply stock-P versions
                                                   row.version+1 .. effect version
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import msgspec

from tillflow.engine import Parking, Processor, RecordedEvent, Session, TillflowError, format_id
from tillflow.engine.versions import version_of, versioned
from tillflow.shop.inventory.events import (
    STOCK_STREAM_PREFIX,
    LowStock,
    StockCounted,
    StockReceived,
    StockShortfall,
    stock_stream,
)
from tillflow.shop.inventory.processor import HEAVY
from tillflow.shop.inventory.stock import is_low
from tillflow.shop.reporting.rows import (
    PRODUCTS_VIEW,
    TOTALS_KEY,
    TOTALS_VIEW,
    AsOf,
    ProductRow,
    Totals,
)
from tillflow.shop.reporting.sales import SALES_VIEW, count_sale
from tillflow.shop.sale.events import (
    ProductAdded,
    ProductDiscontinued,
    ProductRenamed,
    ProductRepriced,
    ProductTaxRateChanged,
)
from tillflow.shop.sale.vat import BEFORE_VAT

NAME = "reporting"
INVENTORY = "inventory"
CATALOG_TYPES = frozenset(
    {
        "ProductAdded",
        "ProductRenamed",
        "ProductRepriced",
        "ProductDiscontinued",
        "ProductTaxRateChanged",
    }
)
STOCK_COMMAND_TYPES = frozenset(
    {"StockReceived", "StockCounted", "ShortfallResolved", "ReorderPointSet", "LowStock"}
)
"""What Inventory's commands append to a product's stream: a delivery, count or reorder
point, and the ``ShortfallResolved`` or ``LowStock`` that follows one in the same append (so
a row's as-of reaches it)."""
SUBSCRIBED = frozenset({"CheckedOut", "ItemsReturned"}) | STOCK_COMMAND_TYPES | CATALOG_TYPES


@dataclass(frozen=True)
class ReportViews:
    """Where a report keeps its rows (so several designs can run side by side)."""

    products: str = PRODUCTS_VIEW
    totals: str = TOTALS_VIEW
    sales: str | None = None
    """Where sales per quarter hour are kept (:mod:`~tillflow.shop.reporting.sales`);
    ``None``: not kept."""

    def at(self, version: int) -> ReportViews:
        """Where version ``version`` of the report keeps its rows (a rebuild's own)."""
        return ReportViews(
            versioned(self.products, version),
            versioned(self.totals, version),
            None if self.sales is None else versioned(self.sales, version),
        )

    def names(self) -> list[str]:
        return [self.products, self.totals, *([] if self.sales is None else [self.sales])]


REPORT_VIEWS = ReportViews(sales=SALES_VIEW)


class _Moved(msgspec.Struct):
    """What the report reads of a ``ProductTaken`` or ``ProductReturned`` (decoded without
    the rest)."""

    quantity: int
    stock_after: int
    short_after: int
    line: int = 0
    tax: int = 0
    tax_rate: str = BEFORE_VAT
    basis_points: int = 0


class _Taken(_Moved, kw_only=True):
    line_total: int


class _Returned(_Moved, kw_only=True):
    refund: int


_TAKEN = msgspec.json.Decoder(_Taken)
_RETURNED = msgspec.json.Decoder(_Returned)
_BY_VERSION = attrgetter("version")


class MissingEffects(TillflowError):
    """Inventory's effects of a checkout or return are not there although the barrier
    says Inventory handled it: the report refuses to guess."""

    def __init__(self, event: RecordedEvent) -> None:
        self.event_id = format_id(event.id)
        super().__init__(
            f"{event.type} {self.event_id} at position {event.position}: Inventory's effects "
            "are missing although Inventory has passed it"
        )


def load_row(session: Session, views: ReportViews, product_id: str) -> ProductRow:
    row: ProductRow | None = session.get(views.products, product_id, ProductRow)
    return row if row is not None else ProductRow(product_id)


def load_totals(session: Session, views: ReportViews) -> Totals:
    totals: Totals | None = session.get(views.totals, TOTALS_KEY, Totals)
    return totals if totals is not None else Totals()


def apply_inventory_event(
    row: ProductRow, totals: Totals, event: RecordedEvent, count_sales: bool = False
) -> None:
    """Move ``row`` to ``event`` (the next version of its product's Inventory stream).
    ``count_sales``: also count checkouts and returns in the totals (at their first line)."""
    _apply(row, totals, event, count_sales)
    row.as_of = AsOf(event.lane, event.position, event.recorded_at, event.version)


def _apply(row: ProductRow, totals: Totals, event: RecordedEvent, count_sales: bool) -> None:
    """:func:`apply_inventory_event` but for ``row.as_of`` (whoever applies several events
    sets it once, to the last)."""
    kind = event.type
    if kind == "ProductTaken":
        taken = _TAKEN.decode(event.data)
        row.units_sold += taken.quantity
        row.revenue += taken.line_total
        row.tax += taken.tax
        totals.units_sold += taken.quantity
        totals.sold(taken.line_total, taken.tax, taken.tax_rate, taken.basis_points)
        if count_sales and taken.line == 0:
            totals.checkouts += 1
        stock, short = taken.stock_after, taken.short_after
    elif kind == "ProductReturned":
        back = _RETURNED.decode(event.data)
        row.units_returned += back.quantity
        row.revenue -= back.refund
        row.tax -= back.tax
        totals.units_returned += back.quantity
        totals.sold(-back.refund, -back.tax, back.tax_rate, back.basis_points)
        if count_sales and back.line == 0:
            totals.returns += 1
        stock, short = back.stock_after, back.short_after
    elif kind == "StockReceived":
        received = event.decode(StockReceived)
        row.received += received.quantity
        stock, short = received.stock_after, received.short_after
    elif kind == "StockCounted":
        counted = event.decode(StockCounted)
        row.count_adjustments += counted.difference
        stock, short = counted.stock_after, counted.short_after
    elif kind == "StockShortfall":
        shortfall = event.decode(StockShortfall)
        row.units_oversold += shortfall.units_short
        stock, short = shortfall.stock_after, shortfall.short_after
    elif kind == "LowStock":
        alert = event.decode(LowStock)
        row.low_alerts += 1
        row.low_since = AsOf(event.lane, event.position, event.recorded_at, event.version)
        stock, short = alert.stock_after, alert.short_after
    else:  # ShortfallResolved, ReorderPointSet: levels (and the point) only
        levels = msgspec.json.decode(event.data)
        stock, short = levels["stock_after"], levels["short_after"]
        row.reorder_point = levels.get("reorder_point", row.reorder_point)
    row.stock_left = stock
    row.open_shortfall = short
    if not is_low(stock, row.reorder_point):
        row.low_since = None


def catch_up(
    session: Session,
    views: ReportViews,
    totals: Totals,
    product_id: str,
    known: list[RecordedEvent],
    upto: int,
    count_sales: bool = False,
) -> None:
    """Apply the product's Inventory events after the row's version up to ``upto``, in
    version order; ``known`` are events of that stream already at hand, in version order
    (read only if they do not cover the range exactly)."""
    row = load_row(session, views, product_id)
    done = row.as_of.version
    if done >= upto:
        return
    if known and known[0].version > done:
        pending = known
    else:
        pending = [event for event in known if event.version > done]
    if not (
        len(pending) == upto - done
        and pending[0].version == done + 1
        and pending[-1].version == upto
    ):
        pending = session.store.read_stream(stock_stream(product_id), done, upto)
    for event in pending:
        _apply(row, totals, event, count_sales)
    if pending:
        last = pending[-1]
        row.as_of = AsOf(last.lane, last.position, last.recorded_at, last.version)
    session.put(views.products, product_id, row)


def apply_catalog_event(row: ProductRow, event: RecordedEvent) -> None:
    if event.type == "ProductAdded":
        added = event.decode(ProductAdded)
        row.name, row.price, row.tax_rate = added.name, added.price, added.tax_rate
    elif event.type == "ProductRenamed":
        row.name = event.decode(ProductRenamed).name
    elif event.type == "ProductRepriced":
        row.price = event.decode(ProductRepriced).price
    elif event.type == "ProductDiscontinued":
        event.decode(ProductDiscontinued)
        row.discontinued = True
    elif event.type == "ProductTaxRateChanged":
        row.tax_rate = event.decode(ProductTaxRateChanged).tax_rate


def handle_catalog(event: RecordedEvent, session: Session, views: ReportViews) -> None:
    product_id = msgspec.json.decode(event.data)["product_id"]
    row = load_row(session, views, product_id)
    apply_catalog_event(row, event)
    session.put(views.products, product_id, row)


class BarrierReport:
    """The handler of the report behind Inventory's barrier. Rebuildable: version *n*
    (processor ``reporting@vn``) keeps its rows in views of its own (:meth:`version_views`)."""

    def __init__(self, views: ReportViews = REPORT_VIEWS) -> None:
        self.views = views
        self._by_processor: dict[str, ReportViews] = {}

    def version_views(self, version: int) -> list[str]:
        return self.views.at(version).names()

    def comparable(self, view: str, row: bytes) -> object:
        """A row's figures; the totals without their ``as_of``: on several lanes, which
        lane's event was handled last depends on how the batches fell."""
        decoded = msgspec.json.decode(row)
        if view == self.views.totals and isinstance(decoded, dict):
            decoded.pop("as_of", None)
        return decoded

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        kind = event.type
        views = self._by_processor.get(session.processor)
        if views is None:
            views = self._by_processor[session.processor] = self.views.at(
                version_of(session.processor)
            )
        if kind in CATALOG_TYPES:
            handle_catalog(event, session, views)
            return
        totals = load_totals(session, views)
        if kind in ("CheckedOut", "ItemsReturned"):
            self._sale(event, session, views, totals)
        else:  # a delivery, count or resolution: the product's stream up to it
            product_id = event.stream.removeprefix(STOCK_STREAM_PREFIX)
            catch_up(session, views, totals, product_id, [event], event.version)
        totals.as_of = AsOf(event.lane, event.position, event.recorded_at)
        session.put(views.totals, TOTALS_KEY, totals)

    def _sale(
        self, event: RecordedEvent, session: Session, views: ReportViews, totals: Totals
    ) -> None:
        effects = session.emitted_by(INVENTORY, event)
        if not effects:
            raise MissingEffects(event)
        if views.sales is not None:
            count_sale(session, views.sales, event, totals)
        by_stream: dict[str, list[RecordedEvent]] = {}
        for effect in effects:
            stream = effect.stream
            if stream.startswith(STOCK_STREAM_PREFIX):
                found = by_stream.get(stream)
                if found is None:
                    by_stream[stream] = [effect]
                else:
                    found.append(effect)
        for stream, events in by_stream.items():
            if len(events) > 1:
                events.sort(key=_BY_VERSION)
            product_id = stream.removeprefix(STOCK_STREAM_PREFIX)
            catch_up(session, views, totals, product_id, events, events[-1].version)
        if event.type == "CheckedOut":
            totals.checkouts += 1
        else:
            totals.returns += 1


def reporting_processor(batch_size: int = 5000, views: ReportViews = REPORT_VIEWS) -> Processor:
    """The report's declaration: after Inventory. An event it cannot count (a sale whose
    Inventory effects an operator skipped) is parked with its stream, not a stop. Run whole
    by one worker: a product's row and the totals take sales from every lane; as heavy as
    Inventory (:data:`~tillflow.shop.inventory.processor.HEAVY`)."""
    return Processor(
        NAME,
        BarrierReport(views),
        types=SUBSCRIBED,
        after=("inventory",),
        batch_size=batch_size,
        parking=Parking(),
        spread=False,
        weight=HEAVY,
    )
