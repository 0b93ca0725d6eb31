"""Money in agrees with goods out: tenders, gross line totals and revenue, checked from the
log against the report's totals (call once the report has caught up).

* every checkout: its tenders pay its total exactly, its total is the sum of its gross
  lines, its change is the cash handed over beyond what cash paid;
* every return: its refunds (card and cash) sum to its refund total;
* per till and in all: tenders taken − refunds given = gross sold − gross refunded, and in
  all that is the report's revenue;
* a declined card (``CardDeclined``) is no sale: its checkout id has no ``CheckedOut``
  unless it was settled afterwards without a card.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tillflow.engine import EventStore
from tillflow.shop.reporting.rows import Totals
from tillflow.shop.sale import tenders
from tillflow.shop.sale.events import CardDeclined, CheckedOut, ItemsReturned


@dataclass
class TenderTally:
    """Money through the tills, from the log: per till, tenders taken net of refunds and
    gross sold net of gross refunded (the two must agree)."""

    tendered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gross: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    declines: int = 0
    by_card: int = 0
    """Cents card tenders paid: what the terminal must have charged, no more."""
    refunded_to_cards: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def revenue(self) -> int:
        return sum(self.tendered.values())


def tally_tenders(store: EventStore) -> TenderTally:
    """Read the whole log; see the module docstring for what is checked."""
    tally = TenderTally()
    till_of: dict[str, str] = {}
    paid_by_card: dict[str, bool] = {}
    declined: list[CardDeclined] = []
    for lane in range(store.lane_count):
        for event in store.iter_all(lane):
            if event.type == "CheckedOut":
                _checked_out(tally, event.decode(CheckedOut), till_of, paid_by_card)
            elif event.type == "ItemsReturned":
                _returned(tally, event.decode(ItemsReturned), till_of)
            elif event.type == "CardDeclined":
                declined.append(event.decode(CardDeclined))
    tally.declines = len(declined)
    for decline in declined:
        if paid_by_card.get(decline.checkout_id):
            tally.problems.append(
                f"checkout {decline.checkout_id}: its card was declined, yet it is recorded "
                "as paid by card"
            )
    return tally


def _checked_out(
    tally: TenderTally, sale: CheckedOut, till_of: dict[str, str], paid_by_card: dict[str, bool]
) -> None:
    paid = tenders.paid_with(sale.total, sale.tenders)
    lines = sum(line.line_total for line in sale.lines)
    tendered = sum(tender.amount for tender in paid)
    change = sum(tender.handed - tender.amount for tender in paid if tender.type == tenders.CASH)
    if not tendered == sale.total == lines:
        tally.problems.append(
            f"checkout {sale.checkout_id}: tenders {tendered}, total {sale.total}, "
            f"lines {lines} differ"
        )
    if change != sale.change:
        tally.problems.append(
            f"checkout {sale.checkout_id}: change {sale.change}, cash handed over gives {change}"
        )
    till_of[sale.checkout_id] = sale.till_id
    paid_by_card[sale.checkout_id] = tenders.has_card(paid)
    tally.by_card += sum(tender.amount for tender in paid if tender.type == tenders.CARD)
    tally.tendered[sale.till_id] += tendered
    tally.gross[sale.till_id] += lines


def _returned(tally: TenderTally, returned: ItemsReturned, till_of: dict[str, str]) -> None:
    refunds = tenders.refunded_with(returned.refund_total, returned.refunds)
    refunded = sum(part.amount for part in refunds)
    lines = sum(line.refund for line in returned.lines)
    if not refunded == returned.refund_total == lines:
        tally.problems.append(
            f"return {returned.return_id}: refunds {refunded}, refund total "
            f"{returned.refund_total}, lines {lines} differ"
        )
    tally.refunded_to_cards += sum(part.amount for part in refunds if part.type == tenders.CARD)
    till = till_of.get(returned.checkout_id, "?")
    tally.tendered[till] -= refunded
    tally.gross[till] -= lines


def tender_violations(store: EventStore, totals: Totals) -> list[str]:
    """Every way tenders, gross totals and the report's revenue disagree (empty: none)."""
    tally = tally_tenders(store)
    found = list(tally.problems)
    for till in sorted(set(tally.tendered) | set(tally.gross)):
        if tally.tendered[till] != tally.gross[till]:
            found.append(
                f"till {till}: tenders net of refunds {tally.tendered[till]}, gross sold net "
                f"of refunds {tally.gross[till]}"
            )
    if tally.revenue != totals.revenue:
        found.append(f"tenders net of refunds {tally.revenue}, report revenue {totals.revenue}")
    return found
