"""A product's stock as Inventory knows it: read from the last event of its stream, and the
rule that turns a change into events (with the apology when stock goes below zero)."""

from __future__ import annotations

import msgspec

from tillflow.engine import RecordedEvent


class _Levels(msgspec.Struct):
    stock_after: int
    short_after: int


class StockLevel:
    """Stock and units short of one product at ``version`` of its stream (0: never seen)."""

    __slots__ = ("product_id", "short", "stock", "version")

    def __init__(self, product_id: str, version: int = 0, stock: int = 0, short: int = 0) -> None:
        self.product_id = product_id
        self.version = version
        self.stock = stock
        self.short = short

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StockLevel):
            return NotImplemented
        return (self.product_id, self.version, self.stock, self.short) == (
            other.product_id,
            other.version,
            other.stock,
            other.short,
        )

    def __hash__(self) -> int:
        return hash((self.product_id, self.version, self.stock, self.short))

    def __repr__(self) -> str:
        return (
            f"StockLevel({self.product_id!r}, version={self.version}, stock={self.stock}, "
            f"short={self.short})"
        )

    @classmethod
    def after(cls, product_id: str, event: RecordedEvent | None) -> StockLevel:
        """The level recorded by ``event`` (the stream's last), or zero stock."""
        if event is None:
            return cls(product_id)
        levels = _LEVELS.decode(event.data)
        return cls(product_id, event.version, levels.stock_after, levels.short_after)

    def moved(self, stock: int, events: int = 1) -> StockLevel:
        """The level after ``events`` more events leave the stock at ``stock``."""
        return StockLevel(self.product_id, self.version + events, stock, max(0, -stock))


_LEVELS = msgspec.json.Decoder(_Levels)
