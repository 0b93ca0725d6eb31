"""Inventory's commands: a manager receives deliveries and counts stock. Making one checks
nothing: :class:`~tillflow.shop.inventory.service.InventoryService` refuses a field of another
type as :class:`~tillflow.shop.errors.InvalidField` naming it, and writes nothing."""

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
