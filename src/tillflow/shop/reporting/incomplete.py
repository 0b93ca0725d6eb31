"""Report rows that miss a parked sale or return: "incomplete since …".

A checkout Inventory parked has not reached its products' rows, nor has one the report
holds behind it, nor an event the report parked itself (a sale, a return, or Inventory's
change of a product). Its figures are not wrong, they are late: the rows of
the products on its lines are marked incomplete since the earliest such park, until an
operator retries or skips it (:mod:`tillflow.engine.dead_letters`). Read at query time from
the parked rows, which are empty while nothing fails: two small reads per report.
"""

from __future__ import annotations

from tillflow.engine import EventStore, RecordedEvent
from tillflow.engine.dead_letters import held_events, parked_keys
from tillflow.shop.inventory.processor import NAME as INVENTORY
from tillflow.shop.reporting.projection import NAME as REPORTING


def incomplete_since(store: EventStore) -> dict[str, float]:
    """Product id → when (Unix seconds) the earliest parked sale or return of it was
    parked; products with none are absent."""
    since: dict[str, float] = {}
    for parked in parked_keys(store, [INVENTORY, REPORTING]):
        letter = parked.letter
        head = store.read(letter.lane, letter.position - 1, letter.position)
        for event in [*head, *held_events(store, letter)]:
            for product in _products(event):
                since[product] = min(since.get(product, letter.parked_at), letter.parked_at)
    return since


def _products(event: RecordedEvent) -> set[str]:
    """The products a sale, a return (their lines) or an Inventory event names."""
    data = event.payload()
    named = [data, *data.get("lines", [])] if isinstance(data, dict) else []
    return {each["product_id"] for each in named if isinstance(each.get("product_id"), str)}
