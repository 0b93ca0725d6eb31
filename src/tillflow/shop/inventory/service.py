"""Inventory's command handlers: deliveries and counts, appended to the product's stream
guarded by its version (Inventory's processor writes the same streams; a conflict reloads
and decides again). A delivery or count that brings a short product back to zero or more
records ``ShortfallResolved`` right after it, in the same append.

A delivery keyed by ``delivery_id`` or a count keyed by ``count_id`` is retry-safe: every
event of its append gets an id derived from the key, and a retry answers the receipt of
that whole append (the same positions and versions as the first answer), changing nothing.
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
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.inventory.events import (
    ShortfallResolved,
    StockCounted,
    StockReceived,
    stock_stream,
)
from tillflow.shop.inventory.stock import StockLevel

RETRIES = 50


def _resolution(level: StockLevel, after: StockLevel, by: str) -> list[NewEvent]:
    if level.short > 0 and after.stock >= 0:
        return [
            NewEvent("ShortfallResolved", ShortfallResolved(level.product_id, by, after.stock, 0))
        ]
    return []


@dataclass(frozen=True)
class _Key:
    """A command's idempotency key: its namespace, the field that carried it, its value, and
    which field of the first recorded event differs from this command (``None``: same)."""

    namespace: str
    field: str
    value: str
    differs: Callable[[RecordedEvent], str | None]


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
        key = None
        if command.delivery_id is not None:

            def differs(first: RecordedEvent) -> str | None:
                recorded = first.decode(StockReceived)
                if recorded.product_id != product_id:
                    return "product_id"
                return "quantity" if recorded.quantity != quantity else None

            delivery_id = validation.identifier("delivery_id", command.delivery_id)
            key = _Key("delivery", "delivery_id", delivery_id, differs)

        def decide(level: StockLevel) -> list[NewEvent]:
            after = level.moved(level.stock + quantity)
            received = StockReceived(
                product_id, quantity, after.stock, after.short, command.delivery_id
            )
            return [NewEvent("StockReceived", received), *_resolution(level, after, "delivery")]

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
        key = None
        if command.count_id is not None:

            def differs(first: RecordedEvent) -> str | None:
                recorded = first.decode(StockCounted)
                if recorded.product_id != product_id:
                    return "product_id"
                return "counted" if recorded.counted != counted else None

            count_id = validation.identifier("count_id", command.count_id)
            key = _Key("count", "count_id", count_id, differs)

        def decide(level: StockLevel) -> list[NewEvent]:
            after = level.moved(counted)
            event = StockCounted(
                product_id, counted, counted - level.stock, counted, after.short, command.count_id
            )
            return [NewEvent("StockCounted", event), *_resolution(level, after, "count")]

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
            level = self.level(product_id)
            events = decide(level)
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
