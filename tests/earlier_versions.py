"""The processors of earlier versions, as far as receipt numbering goes: to leave a store as
they left it, for the handover to the cash-up (``shop/receipts/handover.py``)."""

from __future__ import annotations

from collections.abc import Callable

from tillflow.engine import EventStore, Processor, RecordedEvent, Session
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.shop.receipts.handover import RETIRED
from tillflow.shop.receipts.numbering import SALE_AT_TILL, number
from tillflow.shop.tills.projection import NAME, SUBSCRIBED


def _old_numbering(event: RecordedEvent, session: Session) -> None:
    sale = SALE_AT_TILL.decode(event.data)
    number(session, sale.checkout_id, sale.till_id)


def old_receipts(batch_size: int) -> Processor:
    """The ``receipts`` processor as earlier versions declared it."""
    checkouts = frozenset({"CheckedOut"})
    return Processor(RETIRED, _old_numbering, types=checkouts, batch_size=batch_size, spread=False)


def old_cash_up(batch_size: int) -> Processor:
    """The cash-up of earlier versions, as far as numbering goes: it numbered nothing."""
    return Processor(NAME, lambda event, session: None, types=SUBSCRIBED, batch_size=batch_size)


def run_to(store: EventStore, old: Callable[[int], Processor], lane: int, position: int) -> None:
    """Run the old processor ``old`` on ``lane`` from the start to ``position``."""
    if position > 0:
        LaneProcessor(store, old(position), lane, scheduled=True).step()
