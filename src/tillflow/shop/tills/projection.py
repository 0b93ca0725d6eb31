"""The cash-up: a processor behind the sale keeping, per till session, its takings.

::

    till-<id>:      TillOpened ─► session row (float)        TillClosed ─► counted: Z report
                    CardDeclined ─► declines of the till's open session (same stream: in order)
    checkout-<id>:  CheckedOut{session_id} ─► takings by tender of that session;
                                              the till's next receipt number
                    ItemsReturned{till_id, session_id} ─► refunds by tender of that session

A sale names its session itself (the sale side stamps the till's open session on it), so
whatever order the lanes are handled in, a sale lands in the session it was rung up in.
A sale without one (an unmanaged till) counts in the till's ``outside`` figures. A sale
naming a session the cash-up has already closed counts in that session's ``late`` figures:
a Z report never changes once written. Every row carries the log position it reflects
(``as_of``), so reads are consistent cuts as the report's are (``wait_for`` a receipt).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from tillflow.engine import EventStore, Processor, RecordedEvent, Session
from tillflow.shop.receipts.handover import hand_over, handed_over_at, numbered_through
from tillflow.shop.receipts.numbering import NUMBERED_BY, number
from tillflow.shop.reporting.rows import AsOf
from tillflow.shop.sale.events import checkout_stream
from tillflow.shop.sale.tenders import PaidTender, RefundTender
from tillflow.shop.sale.till_sessions import TillClosed, TillOpened
from tillflow.shop.tills.rows import (
    SESSIONS_VIEW,
    TILLS_VIEW,
    Takings,
    TillRow,
    TillSession,
    session_key,
)

NAME = NUMBERED_BY  # the cash-up gives the receipt numbers too
SUBSCRIBED = frozenset({"TillOpened", "TillClosed", "CardDeclined", "CheckedOut", "ItemsReturned"})


class Sale(msgspec.Struct):
    """The part of a ``CheckedOut`` the cash-up reads."""

    checkout_id: str
    till_id: str
    total: int
    tenders: list[PaidTender] = msgspec.field(default_factory=list)
    session_id: str | None = None


class _Return(msgspec.Struct):
    """The part of an ``ItemsReturned`` the cash-up reads."""

    checkout_id: str
    refund_total: int
    refunds: list[RefundTender] = msgspec.field(default_factory=list)
    till_id: str | None = None
    session_id: str | None = None


class _Declined(msgspec.Struct):
    till_id: str


_SALE = msgspec.json.Decoder(Sale)
_RETURN = msgspec.json.Decoder(_Return)
_DECLINED = msgspec.json.Decoder(_Declined)


def as_of(event: RecordedEvent) -> AsOf:
    return AsOf(event.lane, event.position, event.recorded_at)


def load_till(session: Session, till_id: str) -> TillRow:
    row: TillRow | None = session.get(TILLS_VIEW, till_id, TillRow)
    return row if row is not None else TillRow(till_id)


def load_session(session: Session, till_id: str, session_id: str) -> TillSession:
    key = session_key(till_id, session_id)
    row: TillSession | None = session.get(SESSIONS_VIEW, key, TillSession)
    return row if row is not None else TillSession(till_id, session_id)


def held_till(session: Session, till_id: str) -> TillRow:
    """The till's row for this batch: loaded and put on the first ask, the same object on
    every later one (``session.put`` encodes it as it is when the batch commits)."""
    held = session.scratch
    row: TillRow | None = held.get((TILLS_VIEW, till_id))
    if row is None:
        row = held[(TILLS_VIEW, till_id)] = load_till(session, till_id)
        session.put(TILLS_VIEW, till_id, row)
    return row


def held_session(session: Session, till_id: str, session_id: str) -> TillSession:
    """The session's row for this batch, as :func:`held_till` holds a till's."""
    held = session.scratch
    row: TillSession | None = held.get((SESSIONS_VIEW, till_id, session_id))
    if row is None:
        row = held[(SESSIONS_VIEW, till_id, session_id)] = load_session(
            session, till_id, session_id
        )
        session.put(SESSIONS_VIEW, session_key(till_id, session_id), row)
    return row


def _iso(at: datetime) -> str:
    return at.isoformat()


class CashUp:
    """The handler of the ``tills`` processor."""

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        kind = event.type
        if kind == "CheckedOut":
            sale = _SALE.decode(event.data)
            self.count(session, event, sale.till_id, sale.session_id).sold(sale.total, sale.tenders)
            if event.position > handed_over_at(session, event.lane):
                number(session, sale.checkout_id, sale.till_id)
                numbered_through(session, event)
        elif kind == "ItemsReturned":
            back = _RETURN.decode(event.data)
            till_id = back.till_id
            if till_id is None:  # recorded before till sessions: the checkout's till
                first = session.store.read_stream(checkout_stream(back.checkout_id), 0, 1)
                till_id = first[0].decode(Sale).till_id
            self.count(session, event, till_id, back.session_id).refunded(
                back.refund_total, back.refunds
            )
        elif kind == "CardDeclined":
            till = held_till(session, _DECLINED.decode(event.data).till_id)
            self.count(session, event, till.till_id, till.open_session).declines += 1
        elif kind == "TillOpened":
            self._opened(session, event)
        elif kind == "TillClosed":
            self._closed(session, event)

    def count(
        self, session: Session, event: RecordedEvent, till_id: str, session_id: str | None
    ) -> Takings:
        """The figures ``event`` counts in (the caller adds to them; the rows are held for
        the batch, and stored as they are when it commits)."""
        at = as_of(event)
        till = held_till(session, till_id)
        till.as_of = at
        if session_id is None:
            return till.outside
        row = held_session(session, till_id, session_id)
        row.as_of = at
        return row.late if row.closed else row.takings

    def _opened(self, session: Session, event: RecordedEvent) -> None:
        opened = event.decode(TillOpened)
        row = held_session(session, opened.till_id, opened.session_id)
        row.float = opened.float
        row.opened_at = _iso(opened.at)
        row.as_of = as_of(event)
        till = held_till(session, opened.till_id)
        till.open_session = till.last_session = opened.session_id
        till.sessions += 1
        till.as_of = as_of(event)

    def _closed(self, session: Session, event: RecordedEvent) -> None:
        closed = event.decode(TillClosed)
        row = held_session(session, closed.till_id, closed.session_id)
        row.counted = closed.counted
        row.closed_at = _iso(closed.at)
        row.as_of = row.closed_as_of = as_of(event)
        till = held_till(session, closed.till_id)
        till.open_session = None
        till.as_of = as_of(event)


def take_over_numbering(store: EventStore, lane: int) -> None:
    """The cash-up's ``prepare``: numbering on ``lane`` handed over to it (:func:`hand_over`)."""
    hand_over(store, lane, NAME)


def tills_processor(batch_size: int = 5000, linger: float = 0.0) -> Processor:
    """The cash-up's declaration, which also numbers receipts (it reads only the sale's own
    events: no barrier). Run whole by one worker: a till's session row and its receipt
    counter take sales from every lane. ``linger``: see :class:`~tillflow.engine.Processor`
    (a receipt's reader waits for its number, which hurries it)."""
    return Processor(
        NAME,
        CashUp(),
        types=SUBSCRIBED,
        batch_size=batch_size,
        spread=False,
        linger=linger,
        prepare=take_over_numbering,
    )
