"""Inventory's command handlers: deliveries, counts and reorder points, appended to the
product's stream guarded by its version (Inventory's processor writes the same streams; a
conflict reloads and decides again). A delivery or count that brings a short product back to
zero or more records ``ShortfallResolved`` right after it, in the same append; a count, or a
reorder point raised above the stock, that crosses into low stock records ``LowStock``
(:func:`~tillflow.shop.inventory.stock.low_stock`).

A delivery keyed by ``delivery_id``, a count keyed by ``count_id`` or a reorder point keyed
by ``change_id`` is retry-safe: every event of its append gets an id derived from the key,
and a retry answers the receipt of that whole append (the same positions and versions as the
first answer), changing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tillflow.engine import (
    ConcurrencyConflict,
    EventIdReused,
    EventStore,
    NewEvent,
    Receipt,
    RecordedEvent,
)
from tillflow.engine.keyed import recorded_command, with_key
from tillflow.engine.store import receipt_of
from tillflow.shop import validation
from tillflow.shop.errors import CheckoutConflict
from tillflow.shop.inventory.commands import CountStock, ReceiveStock, SetReorderPoint
from tillflow.shop.inventory.events import (
    ReorderPointSet,
    ShortfallResolved,
    StockCounted,
    StockReceived,
    stock_stream,
)
from tillflow.shop.inventory.stock import StockLevel, low_stock

RETRIES = 50


def _follow_ups(level: StockLevel, after: StockLevel, by: str) -> list[NewEvent]:
    """What a change from ``level`` to ``after`` entails: a resolved shortfall, a low-stock
    alert (never both: a short product with a reorder point is already low)."""
    if level.short > 0 and after.stock >= 0:
        resolved = ShortfallResolved(level.product_id, by, after.stock, 0, after.reorder_point)
        return [NewEvent("ShortfallResolved", resolved)]
    if (alert := low_stock(level, after, by)) is not None:
        return [NewEvent("LowStock", alert)]
    return []


_KeyedEvent = type[StockReceived] | type[StockCounted] | type[ReorderPointSet]
"""The first event of a keyed command's append."""


@dataclass(frozen=True)
class _Key:
    """A command's idempotency key: its namespace, the field that carried it, its value; and
    what the command's first event must hold for a repeat to be the same command: ``kind``
    of event, the product, and ``expected`` in the field ``compared``."""

    namespace: str
    field: str
    value: str
    kind: _KeyedEvent
    product_id: str
    compared: str
    expected: int

    def differs(self, first: RecordedEvent) -> str | None:
        """The field in which ``first`` (the first event recorded under this key) differs
        from this command, or ``None``."""
        recorded = first.decode(self.kind)
        if recorded.product_id != self.product_id:
            return "product_id"
        return self.compared if getattr(recorded, self.compared) != self.expected else None


def _key(
    namespace: str,
    field: str,
    value: str | None,
    kind: _KeyedEvent,
    product_id: str,
    compared: str,
    expected: int,
) -> _Key | None:
    """The key of a command carrying ``value`` in ``field`` (``None``: not keyed); raises
    :class:`InvalidField` for a value that is not an identifier."""
    if value is None:
        return None
    key = validation.identifier(field, value)
    return _Key(namespace, field, key, kind, product_id, compared, expected)


class InventoryService:
    """Inventory's write side over one store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def level(self, product_id: str) -> StockLevel:
        """The product's stock now (zero for a product never seen)."""
        validation.identifier("product_id", product_id)
        return StockLevel.after(product_id, self.store.last_event(stock_stream(product_id)))

    def receive(self, command: ReceiveStock) -> Receipt:
        """Record a delivery. Raises :class:`InvalidField`; a repeated ``delivery_id`` with
        the same product and quantity returns the original receipt, with other content it is
        a :class:`CheckoutConflict` naming the field."""
        validation.of_type("command", command, ReceiveStock)
        product_id = validation.identifier("product_id", command.product_id)
        quantity = validation.quantity("quantity", command.quantity, validation.MAX_STOCK_QUANTITY)
        key = _key(
            "delivery",
            "delivery_id",
            command.delivery_id,
            StockReceived,
            product_id,
            "quantity",
            quantity,
        )

        def decide(level: StockLevel) -> list[NewEvent]:
            after = level.moved(level.stock + quantity)
            received = StockReceived(
                product_id,
                quantity,
                after.stock,
                after.short,
                command.delivery_id,
                after.reorder_point,
            )
            return [NewEvent("StockReceived", received), *_follow_ups(level, after, "delivery")]

        return self._record(product_id, decide, key)

    def count(self, command: CountStock) -> Receipt:
        """Record a stock-take; raises :class:`InvalidField` for a count below zero. A
        repeated ``count_id`` with the same product and count returns the original receipt
        (the count is not applied again), with other content a :class:`CheckoutConflict`."""
        validation.of_type("command", command, CountStock)
        product_id = validation.identifier("product_id", command.product_id)
        counted = validation.whole_number(
            "counted", command.counted, 0, validation.MAX_STOCK_QUANTITY
        )
        key = _key(
            "count", "count_id", command.count_id, StockCounted, product_id, "counted", counted
        )

        def decide(level: StockLevel) -> list[NewEvent]:
            after = level.moved(counted)
            event = StockCounted(
                product_id,
                counted,
                counted - level.stock,
                counted,
                after.short,
                command.count_id,
                after.reorder_point,
            )
            return [NewEvent("StockCounted", event), *_follow_ups(level, after, "count")]

        return self._record(product_id, decide, key)

    def set_reorder_point(self, command: SetReorderPoint) -> Receipt:
        """Set the product's reorder point; raises :class:`InvalidField` for one below zero.
        A point raised above the stock of a product not yet low is a crossing: ``LowStock``
        is recorded with it. The point the product already has records nothing and answers
        the receipt of the product's last event (unless keyed: a ``change_id`` is always
        recorded, and a repeat with the same product and point answers the first receipt;
        with other content it is a :class:`CheckoutConflict`)."""
        validation.of_type("command", command, SetReorderPoint)
        product_id = validation.identifier("product_id", command.product_id)
        point = validation.whole_number(
            "reorder_point", command.reorder_point, 0, validation.MAX_STOCK_QUANTITY
        )
        key = _key(
            "reorder point",
            "change_id",
            command.change_id,
            ReorderPointSet,
            product_id,
            "reorder_point",
            point,
        )

        def decide(level: StockLevel) -> list[NewEvent]:
            if key is None and level.version > 0 and level.reorder_point == point:
                return []  # nothing to change: answer the product's stock as it stands
            after = level.with_point(point)
            event = ReorderPointSet(
                product_id, point, level.reorder_point, after.stock, after.short, command.change_id
            )
            return [NewEvent("ReorderPointSet", event), *_follow_ups(level, after, "reorder_point")]

        return self._record(product_id, decide, key)

    def _record(
        self,
        product_id: str,
        decide: Callable[[StockLevel], list[NewEvent]],
        key: _Key | None,
    ) -> Receipt:
        """Append what ``decide`` makes of the product's level, guarded by its version and
        decided again on a conflict; a keyed command already recorded answers its receipt."""
        stream = stock_stream(product_id)
        conflict: ConcurrencyConflict | None = None
        for _ in range(RETRIES):
            if key is not None and (
                previous := recorded_command(self.store, key.namespace, key.value)
            ):
                if (field := key.differs(previous[0])) is not None:
                    raise CheckoutConflict(key.field, key.value, field)
                return receipt_of(previous)
            last = self.store.last_event(stream)
            level = StockLevel.after(product_id, last)
            events = decide(level)
            if not events:
                assert last is not None  # only a product with a stream decides nothing
                return receipt_of([last])
            if key is not None:
                events = with_key(key.namespace, key.value, events)
            try:
                return self.store.append(stream, events, level.version)
            except ConcurrencyConflict as error:
                conflict = error
            except EventIdReused:
                if key is None or not recorded_command(self.store, key.namespace, key.value):
                    raise
                # a retry with the same key committed first: the loop answers its receipt
        assert conflict is not None  # every attempt that did not return met a conflict
        raise conflict
