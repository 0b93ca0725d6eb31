"""A wrong cash-up the simulator's checks must catch (negative control)."""

from __future__ import annotations

import msgspec

from tillflow.engine import Processor, RecordedEvent, Session
from tillflow.shop.sale.tenders import CASH
from tillflow.shop.tills.projection import NAME, SUBSCRIBED, CashUp, Sale


class HandedCashUp(CashUp):
    """Counts the cash handed over as taken, forgetting the change given back: a drawer
    that always looks richer than it is."""

    def __call__(self, event: RecordedEvent, session: Session) -> None:
        if event.type != "CheckedOut":
            super().__call__(event, session)
            return
        sale = event.decode(Sale)
        handed = [
            msgspec.structs.replace(tender, amount=tender.handed) if tender.type == CASH else tender
            for tender in sale.tenders
        ]
        self.count(session, event, sale.till_id, sale.session_id).sold(sale.total, handed)


def handed_cash_up_processor() -> Processor:
    """The negative control in the place of the ``tills`` processor."""
    return Processor(NAME, HandedCashUp(), types=SUBSCRIBED, batch_size=2)
