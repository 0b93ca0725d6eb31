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

from collections import defaultdict

import msgspec

from tillflow.engine import Processor, RecordedEvent, Session, TillflowError, format_id
from tillflow.inventory.events import (
    STOCK_STREAM_PREFIX,
    ProductReturned,
    ProductTaken,
    StockCounted,
    StockReceived,
    StockShortfall,
    stock_stream,
)
from tillflow.reporting.rows import (
    PRODUCTS_VIEW,
    TOTALS_KEY,
    TOTALS_VIEW,
    AsOf,
    ProductRow,
    Totals,
)
from tillflow.sale.events import (
    ProductAdded,
    ProductDiscontinued,
    ProductRenamed,
    ProductRepriced,
)

NAME = "reporting"
SUBSCRIBED = frozenset(
    {
        "CheckedOut",
        "ItemsReturned",
        "StockReceived",
        "StockCounted",
        "ProductAdded",
        "ProductRenamed",
        "ProductRepriced",
        "ProductDiscontinued",
    }
)


class MissingEffects(TillflowError):
    """Inventory's effects of a checkout or return are not there although the barrier
    says Inventory handled it: the report refuses to guess."""

    def __init__(self, event: RecordedEvent) -> None:
        self.event_id = format_id(event.id)
        super().__init__(
            f"{event.type} {self.event_id} at position {event.position}: Inventory's effects "
            "are missing although Inventory has passed it"
        )


def _row(session: Session, product_id: str) -> ProductRow:
    row: ProductRow | None = session.get(PRODUCTS_VIEW, product_id, ProductRow)
    return row if row is not None else ProductRow(product_id)


def _totals(session: Session) -> Totals:
    totals: Totals | None = session.get(TOTALS_VIEW, TOTALS_KEY, Totals)
    return totals if totals is not None else Totals()


def _apply(row: ProductRow, totals: Totals, event: RecordedEvent) -> None:
    """Move ``row`` to ``event`` (the next version of its product's Inventory stream)."""
    kind = event.type
    if kind == "ProductTaken":
        taken = event.decode(ProductTaken)
        row.units_sold += taken.quantity
        row.revenue += taken.line_total
        totals.units_sold += taken.quantity
        totals.revenue += taken.line_total
        stock, short = taken.stock_after, taken.short_after
    elif kind == "ProductReturned":
        back = event.decode(ProductReturned)
        row.units_returned += back.quantity
        row.revenue -= back.refund
        totals.units_returned += back.quantity
        totals.revenue -= back.refund
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
    else:  # ShortfallResolved and anything later versions add: levels only
        levels = msgspec.json.decode(event.data)
        stock, short = levels["stock_after"], levels["short_after"]
    row.stock_left = stock
    row.open_shortfall = short
    row.as_of = AsOf(event.lane, event.position, event.recorded_at, event.version)


def _catch_up(
    session: Session, totals: Totals, product_id: str, known: list[RecordedEvent], upto: int
) -> None:
    """Apply the product's Inventory events after the row's version up to ``upto``, in
    version order; ``known`` are events of that stream already at hand."""
    row = _row(session, product_id)
    done = row.as_of.version
    if done >= upto:
        return
    pending = [event for event in known if event.version > done]
    if [event.version for event in pending] != list(range(done + 1, upto + 1)):
        pending = session.store.read_stream(stock_stream(product_id), done, upto)
    for event in pending:
        _apply(row, totals, event)
    session.put(PRODUCTS_VIEW, product_id, row)


def _handle_sale(event: RecordedEvent, session: Session, totals: Totals) -> None:
    effects = session.store.find_by_causation(event.id)
    if not effects:
        raise MissingEffects(event)
    by_product: dict[str, list[RecordedEvent]] = defaultdict(list)
    for effect in effects:
        if effect.stream.startswith(STOCK_STREAM_PREFIX):
            by_product[effect.stream.removeprefix(STOCK_STREAM_PREFIX)].append(effect)
    for product_id, events in by_product.items():
        events.sort(key=lambda e: e.version)
        _catch_up(session, totals, product_id, events, events[-1].version)
    if event.type == "CheckedOut":
        totals.checkouts += 1
    else:
        totals.returns += 1


def _handle_catalog(event: RecordedEvent, session: Session) -> None:
    data = msgspec.json.decode(event.data)
    row = _row(session, data["product_id"])
    if event.type == "ProductAdded":
        added = event.decode(ProductAdded)
        row.name, row.price = added.name, added.price
    elif event.type == "ProductRenamed":
        row.name = event.decode(ProductRenamed).name
    elif event.type == "ProductRepriced":
        row.price = event.decode(ProductRepriced).price
    elif event.type == "ProductDiscontinued":
        event.decode(ProductDiscontinued)
        row.discontinued = True
    session.put(PRODUCTS_VIEW, row.product_id, row)


def handle(event: RecordedEvent, session: Session) -> None:
    kind = event.type
    if kind in ("CheckedOut", "ItemsReturned"):
        totals = _totals(session)
        _handle_sale(event, session, totals)
    elif kind in ("StockReceived", "StockCounted"):
        totals = _totals(session)
        product_id = event.stream.removeprefix(STOCK_STREAM_PREFIX)
        _catch_up(session, totals, product_id, [event], event.version)
    else:
        _handle_catalog(event, session)
        return
    totals.as_of = AsOf(event.lane, event.position, event.recorded_at)
    session.put(TOTALS_VIEW, TOTALS_KEY, totals)


def reporting_processor(batch_size: int = 5000) -> Processor:
    """The report's declaration: after Inventory."""
    return Processor(NAME, handle, types=SUBSCRIBED, after=("inventory",), batch_size=batch_size)
