"""Inventory's processor: every checkout takes its lines off the shelf, every return puts
them back. A sale is never refused: when stock goes below zero the ``StockShortfall`` (the
apology) is recorded right after the ``ProductTaken`` and the product stays short until a
delivery, count or return resolves it. A sale that takes the stock below the reorder point
of a product not yet low records ``LowStock`` after them (once per crossing: the decision is
the level's, so a redo of the batch decides it again from the same level, with the same ids).

Emits guard each product stream with the version read (commands write the same streams): if
a delivery lands in between, the batch's commit is refused whole and the runtime redoes it.
"""

from __future__ import annotations

import msgspec

from tillflow.engine import Parking, Processor, RecordedEvent, Session
from tillflow.shop.inventory.events import (
    ProductReturned,
    ProductTaken,
    ShortfallResolved,
    StockShortfall,
    stock_stream,
)
from tillflow.shop.inventory.stock import StockLevel, low_stock
from tillflow.shop.sale.events import ItemsReturned
from tillflow.shop.sale.vat import BEFORE_VAT

NAME = "inventory"
HEAVY = 3
"""The ``weight`` of Inventory and of the report. Measured on PostgreSQL (worker CPU per
checkout, each processor alone over a backlog, less the process's start): Inventory
~50–85 µs, the tills' cash-up and the receipt numbers ~15–20 µs each; paired with one light
processor per worker, the report's worker took 78–142 µs, Inventory's 64–102 µs."""


def _level(session: Session, product_id: str) -> StockLevel:
    """The product's level: from this processor's cache (levels it wrote itself), else the
    stream's last event. A delivery recorded meanwhile makes the guarded emit fail; the
    batch's commit fails whole, the cache is emptied and the redo reads afresh."""
    level: StockLevel | None = session.cache.get(product_id)
    if level is None:
        level = StockLevel.after(product_id, session.store.last_event(stock_stream(product_id)))
    return level


def _keep(session: Session, level: StockLevel) -> None:
    session.cache[level.product_id] = level


class _Line(msgspec.Struct):
    """The part of a ``CheckoutLine`` Inventory copies (not its name, net or GTIN)."""

    product_id: str
    quantity: int
    unit_price: int
    line_total: int
    tax_rate: str = BEFORE_VAT
    basis_points: int = 0
    tax: int = 0


class _Sold(msgspec.Struct):
    """The part of ``CheckedOut`` Inventory needs (its time is not decoded)."""

    checkout_id: str
    lines: list[_Line]


_SOLD = msgspec.json.Decoder(_Sold)


def take(event: RecordedEvent, session: Session) -> None:
    checked_out = _SOLD.decode(event.data)
    for index, line in enumerate(checked_out.lines):
        level = _level(session, line.product_id)
        after = level.moved(level.stock - line.quantity)
        stream = stock_stream(line.product_id)
        taken = ProductTaken(
            line.product_id,
            checked_out.checkout_id,
            line.quantity,
            line.unit_price,
            line.line_total,
            after.stock,
            after.short,
            index,
            after.reorder_point,
            tax=line.tax,
            tax_rate=line.tax_rate,
            basis_points=line.basis_points,
        )
        session.emit(stream, "ProductTaken", taken, expected_version=level.version)
        if after.stock < 0:
            units_short = min(line.quantity, -after.stock)
            apology = StockShortfall(
                line.product_id,
                checked_out.checkout_id,
                units_short,
                after.stock,
                after.short,
                after.reorder_point,
            )
            session.emit(stream, "StockShortfall", apology, expected_version=after.version)
            after = after.moved(after.stock)
        if (alert := low_stock(level, after, "sale", checked_out.checkout_id)) is not None:
            session.emit(stream, "LowStock", alert, expected_version=after.version)
            after = after.moved(after.stock)
        _keep(session, after)


def put_back(event: RecordedEvent, session: Session) -> None:
    returned = event.decode(ItemsReturned)
    for index, line in enumerate(returned.lines):
        level = _level(session, line.product_id)
        after = level.moved(level.stock + line.quantity)
        stream = stock_stream(line.product_id)
        back = ProductReturned(
            line.product_id,
            returned.checkout_id,
            returned.return_id,
            line.quantity,
            line.refund,
            after.stock,
            after.short,
            index,
            after.reorder_point,
            tax=line.tax,
            tax_rate=line.tax_rate,
            basis_points=line.basis_points,
        )
        session.emit(stream, "ProductReturned", back, expected_version=level.version)
        if level.short > 0 and after.stock >= 0:
            resolved = ShortfallResolved(
                line.product_id, "return", after.stock, 0, after.reorder_point
            )
            session.emit(stream, "ShortfallResolved", resolved, expected_version=after.version)
            after = after.moved(after.stock)
        _keep(session, after)


def handle(event: RecordedEvent, session: Session) -> None:
    if event.type == "CheckedOut":
        take(event, session)
    elif event.type == "ItemsReturned":
        put_back(event, session)


def inventory_processor(batch_size: int = 3000) -> Processor:
    """Inventory's processor declaration: a checkout that keeps failing is parked, with its
    returns held behind it, while other checkouts go on. Run whole by one worker: a
    product's stock stream takes checkouts from every lane. It weighs as much as the report
    and three times the tills' cash-up or the receipt numbers (their workers' CPU per
    checkout on PostgreSQL), so that workers running the whole shop split the two."""
    return Processor(
        NAME,
        handle,
        types=frozenset({"CheckedOut", "ItemsReturned"}),
        batch_size=batch_size,
        parking=Parking(),
        spread=False,
        weight=HEAVY,
    )
