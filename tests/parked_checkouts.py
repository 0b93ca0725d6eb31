"""A checkout that Inventory parked: what a bug of an earlier release leaves behind, made
with a broken Inventory handler, for the tests of the dead-letter routes and commands."""

from __future__ import annotations

from tillflow.engine import (
    EventStore,
    HandlerFailed,
    LaneProcessor,
    Parking,
    Processor,
    RecordedEvent,
    Session,
)
from tillflow.engine.parked_lane import attach_parking
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.processor import NAME as INVENTORY
from tillflow.shop.sale.commands import Checkout, LineRequest

BUG = "a bug of the earlier release"


def _broken(event: RecordedEvent, session: Session) -> None:
    raise RuntimeError(BUG)


def park_checkout(store: EventStore, checkout_id: str, product_id: str, quantity: int) -> None:
    """Ring up ``checkout_id`` and have a broken Inventory park it (lane 0: SQLite)."""
    Shop(store).sale.checkout(Checkout(checkout_id, "t", [LineRequest(product_id, quantity)]))
    declared = Processor(
        INVENTORY,
        _broken,
        frozenset({"CheckedOut", "ItemsReturned"}),
        parking=Parking(max_attempts=1),
    )
    lanes = {INVENTORY: [LaneProcessor(store, declared, 0)]}
    attach_parking(lanes, {INVENTORY: declared})
    lane = lanes[INVENTORY][0]
    while store.checkpoint(INVENTORY, 0) < store.head(0):
        try:
            lane.step()
        except HandlerFailed:
            lane.park()
