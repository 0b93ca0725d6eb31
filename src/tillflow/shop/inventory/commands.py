"""Inventory's commands: a manager receives deliveries, counts stock and sets reorder points.
Making one checks nothing: :class:`~tillflow.shop.inventory.service.InventoryService` refuses
a field of another type as :class:`~tillflow.shop.errors.InvalidField` naming it, and writes
nothing."""

from __future__ import annotations

import msgspec


class ReceiveStock(msgspec.Struct, frozen=True):
    """Put a delivery on the shelf. ``delivery_id``, when given, makes a retry harmless."""

    product_id: str
    quantity: int
    delivery_id: str | None = None


class CountStock(msgspec.Struct, frozen=True):
    """A stock-take: the shelf holds ``counted`` units (≥ 0). A count is absolute, so a
    retry of a stale one would undo what happened since: ``count_id``, when given, makes a
    retry harmless (it answers the first count's receipt and changes nothing)."""

    product_id: str
    counted: int
    count_id: str | None = None


class SetReorderPoint(msgspec.Struct, frozen=True):
    """Set the stock level below which the product is low (``0``: none, ≥ 0). Setting the
    point it already has records nothing; ``change_id``, when given, makes a retry answer the
    first call's receipt (a stale retry would otherwise undo a later change)."""

    product_id: str
    reorder_point: int
    change_id: str | None = None
