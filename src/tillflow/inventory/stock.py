"""A product's stock as Inventory knows it: read from the last event of its stream, and the
rule that turns a change into events (with the apology when stock goes below zero)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tillflow.engine import RecordedEvent


class _Levels(msgspec.Struct):
    stock_after: int
    short_after: int


@dataclass(frozen=True)
class StockLevel:
    """Stock and units short of one product at ``version`` of its stream (0: never seen)."""

    product_id: str
    version: int = 0
    stock: int = 0
    short: int = 0

    @classmethod
    def after(cls, product_id: str, event: RecordedEvent | None) -> StockLevel:
        """The level recorded by ``event`` (the stream's last), or zero stock."""
        if event is None:
            return cls(product_id)
        levels = msgspec.json.decode(event.data, type=_Levels)
        return cls(product_id, event.version, levels.stock_after, levels.short_after)

    def moved(self, stock: int, events: int = 1) -> StockLevel:
        """The level after ``events`` more events leave the stock at ``stock``."""
        return StockLevel(self.product_id, self.version + events, stock, max(0, -stock))
