"""Inventory's command handlers: deliveries and counts, appended to the product's stream
guarded by its version (Inventory's processor writes the same streams; a conflict reloads
and decides again). A delivery or count that brings a short product back to zero or more
records ``ShortfallResolved`` right after it."""

from __future__ import annotations

from tillflow.engine import (
    ConcurrencyConflict,
    EventIdReused,
    EventStore,
    NewEvent,
    Receipt,
    id_from_key,
)
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
        event_id = None
        if command.delivery_id is not None:
            validation.identifier("delivery_id", command.delivery_id)
            event_id = id_from_key("delivery", command.delivery_id)
        for _ in range(RETRIES):
            if event_id is not None and (previous := self.store.get_event(event_id)):
                recorded = previous.decode(StockReceived)
                if (recorded.product_id, recorded.quantity) != (product_id, quantity):
                    field = "product_id" if recorded.product_id != product_id else "quantity"
                    raise CheckoutConflict("delivery_id", str(command.delivery_id), field)
                return receipt_of([previous])
            level = self.level(product_id)
            after = level.moved(level.stock + quantity)
            received = StockReceived(
                product_id, quantity, after.stock, after.short, command.delivery_id
            )
            events = [NewEvent("StockReceived", received, id=event_id)]
            events += _resolution(level, after, "delivery")
            try:
                return self.store.append(stock_stream(product_id), events, level.version)
            except (ConcurrencyConflict, EventIdReused):
                continue
        raise ConcurrencyConflict(stock_stream(product_id), -1, -1)

    def count(self, command: CountStock) -> Receipt:
        """Record a stock-take; raises :class:`InvalidField` for a count below zero."""
        validation.of_type("command", command, CountStock)
        product_id = validation.identifier("product_id", command.product_id)
        counted = validation.whole_number(
            "counted", command.counted, 0, validation.MAX_STOCK_QUANTITY
        )
        for _ in range(RETRIES):
            level = self.level(product_id)
            after = level.moved(counted)
            event = StockCounted(product_id, counted, counted - level.stock, counted, after.short)
            events = [NewEvent("StockCounted", event), *_resolution(level, after, "count")]
            try:
                return self.store.append(stock_stream(product_id), events, level.version)
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(stock_stream(product_id), -1, -1)
