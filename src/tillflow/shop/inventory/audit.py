"""Checks of Inventory's own streams, for simulations and tests: ``LowStock`` is recorded
exactly once per crossing into low stock, right after the change that crossed.

Read along a product's stream, each event leaves the product low or not
(:func:`~tillflow.shop.inventory.stock.is_low` of its levels). A *crossing* is a change
that leaves it low while no alert is open; its ``LowStock`` must follow at once (after the
sale's ``StockShortfall``, if any), and no other ``LowStock`` may appear until a change
leaves the product not low again.
"""

from __future__ import annotations

import msgspec

from tillflow.engine import EventStore, RecordedEvent
from tillflow.shop.inventory.events import LowStock, stock_stream
from tillflow.shop.inventory.stock import is_low


class _Levels(msgspec.Struct):
    stock_after: int
    reorder_point: int = 0


_LEVELS = msgspec.json.Decoder(_Levels)
_CHECKOUT = msgspec.json.Decoder(dict[str, object])


def _low(event: RecordedEvent) -> bool:
    levels = _LEVELS.decode(event.data)
    return is_low(levels.stock_after, levels.reorder_point)


def alert_violations(events: list[RecordedEvent]) -> list[str]:
    """What is wrong with the ``LowStock`` alerts of one product's stream (its events in
    version order)."""
    problems: list[str] = []
    open_since: int | None = None  # version of the alert of the current low spell
    crossing: RecordedEvent | None = None  # a change that crossed, its alert still due
    for event in events:
        where = f"{event.stream} v{event.version}"
        if event.type == "LowStock":
            alert = event.decode(LowStock)
            if not _low(event):
                problems.append(f"{where}: LowStock while not below the reorder point")
            if open_since is not None:
                problems.append(
                    f"{where}: a second LowStock in the low spell alerted at v{open_since}"
                )
            elif crossing is None:
                problems.append(f"{where}: LowStock not right after the change that crossed")
            elif crossing.type == "ProductTaken":
                sold = _CHECKOUT.decode(crossing.data)
                if alert.checkout_id != sold.get("checkout_id"):
                    problems.append(f"{where}: LowStock names another checkout than the sale")
            open_since, crossing = event.version, None
            continue
        if crossing is not None and event.type != "StockShortfall":
            problems.append(f"{crossing.stream} v{crossing.version}: crossed with no LowStock")
            open_since, crossing = crossing.version, None
        if not _low(event):
            open_since, crossing = None, None
        elif open_since is None and crossing is None:
            crossing = event
    if crossing is not None:
        problems.append(f"{crossing.stream} v{crossing.version}: crossed with no LowStock")
    return problems


def low_stock_violations(store: EventStore, product_ids: list[str]) -> list[str]:
    """:func:`alert_violations` of every product in ``product_ids``."""
    return [
        problem
        for product_id in product_ids
        for problem in alert_violations(store.read_stream(stock_stream(product_id)))
    ]
