"""What the cash-up holds: a row per till session (its X report while open, its Z report
once closed) and a row per till. Money in integer cents. Stored as view rows, committed
with the ``tills`` processor's checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tillflow.shop.reporting.rows import AsOf
from tillflow.shop.sale.tenders import (
    CARD,
    CASH,
    PaidTender,
    RefundTender,
    paid_with,
    refunded_with,
)

SESSIONS_VIEW: Final = "till.sessions"
TILLS_VIEW: Final = "till.tills"


def session_key(till_id: str, session_id: str) -> str:
    return f"{till_id}/{session_id}"


class Takings(msgspec.Struct):
    """Money through a till: what its sales took and its returns paid back, by tender.

    ``cash`` is what cash paid towards totals: the cash handed over (``cash_handed``) less
    the ``change`` given back, so the drawer gained exactly ``cash``; ``cash_refunds`` left
    it. ``card`` and ``card_refunds`` went through the terminal."""

    sales: int = 0
    returns: int = 0
    declines: int = 0
    cash: int = 0
    card: int = 0
    cash_handed: int = 0
    change: int = 0
    cash_refunds: int = 0
    card_refunds: int = 0

    def sold(self, total: int, tenders: Sequence[PaidTender]) -> None:
        """Count a checkout of ``total`` paid with ``tenders`` (none: recorded before
        tenders existed, the total in cash)."""
        self.sales += 1
        for tender in paid_with(total, tenders):
            if tender.type == CASH:
                self.cash += tender.amount
                self.cash_handed += tender.handed
                self.change += tender.handed - tender.amount
            elif tender.type == CARD:
                self.card += tender.amount

    def refunded(self, refund_total: int, refunds: Sequence[RefundTender]) -> None:
        """Count a return of ``refund_total`` paid back as ``refunds`` (none: recorded
        before tenders existed, all in cash)."""
        self.returns += 1
        for part in refunded_with(refund_total, refunds):
            if part.type == CASH:
                self.cash_refunds += part.amount
            elif part.type == CARD:
                self.card_refunds += part.amount

    @property
    def net_cash(self) -> int:
        """What the drawer gained: cash taken less cash refunded."""
        return self.cash - self.cash_refunds


class TillSession(msgspec.Struct):
    """One session of a till: opened with ``float`` cents, closed with ``counted``.

    ``takings``: its sales, returns and declines up to ``as_of``. Once closed the session is
    its Z report: ``takings`` no longer change; a sale naming it that the cash-up meets after
    the close (rung up in the moment the till was being closed) is kept apart in ``late``."""

    till_id: str
    session_id: str
    float: int = 0
    opened_at: str | None = None
    """ISO time of the ``TillOpened`` (``None`` while only sales naming it have been seen)."""
    closed_at: str | None = None
    counted: int | None = None
    takings: Takings = msgspec.field(default_factory=Takings)
    late: Takings = msgspec.field(default_factory=Takings)
    as_of: AsOf = msgspec.field(default_factory=AsOf)
    closed_as_of: AsOf | None = None
    """Where the ``TillClosed`` is in the log."""

    @property
    def closed(self) -> bool:
        return self.counted is not None

    @property
    def expected_cash(self) -> int:
        """Cash that should be in the drawer: the float, plus cash taken (handed over less
        change), less cash refunded."""
        return self.float + self.takings.net_cash

    @property
    def difference(self) -> int | None:
        """Counted less expected (negative: cash missing); ``None`` while open."""
        return None if self.counted is None else self.counted - self.expected_cash


class TillRow(msgspec.Struct):
    """A till: its open session (``None``: closed or never opened), its last session, and
    ``outside``: what it took outside any session (an unmanaged till's sales)."""

    till_id: str
    open_session: str | None = None
    last_session: str | None = None
    sessions: int = 0
    outside: Takings = msgspec.field(default_factory=Takings)
    as_of: AsOf = msgspec.field(default_factory=AsOf)
