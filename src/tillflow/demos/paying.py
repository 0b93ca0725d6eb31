"""How the demo's customers pay at the counter: cash (often a note larger than the total),
a card, or both; some cards are declined, and then the customer pays the same basket in
cash (the same checkout id) or walks away. Keeps the money seen, for the demo's checks.

::

    basket ──► choose tenders ──► sale.checkout_recorded_async ──► recorded (cash/card/split)
                                         │ CardDeclined (no sale, recorded on till-<id>)
                                         ├──► the same checkout id in cash ──► recorded
                                         └──► walks away: nothing sold
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

import msgspec

from tillflow.engine import Receipt
from tillflow.shop.errors import CardDeclined
from tillflow.shop.sale.commands import Checkout
from tillflow.shop.sale.events import CheckedOut
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import CARD, CASH, Tender

DECLINED_CARD: Final = "card-declined"
"""The card reference the demo's terminal declines."""
NOTES: Final = (500, 1000, 2000, 5000, 10000)
"""Banknotes in cents: cash is handed over as the smallest that covers the rest, or exact."""
CASH_SHARE, CARD_SHARE, SPLIT_SHARE = 0.4, 0.35, 0.15  # the rest: a card that is declined
SETTLE_IN_CASH: Final = 0.6
"""Share of customers whose card was declined who then pay the same basket in cash."""


def demo_terminal() -> SimulatedTerminal:
    """The demo's card terminal: it declines :data:`DECLINED_CARD`, approves every other."""
    return SimulatedTerminal(decline_cards={DECLINED_CARD})


def handed_over(rng: random.Random, due: int) -> int:
    """Cash a customer hands over for ``due`` cents: exact, or the smallest note that
    covers it (exact when no note does)."""
    if rng.random() < 0.3:
        return due
    return next((note for note in NOTES if note >= due), due)


@dataclass
class Payments:
    """Money through the demo's tills, as the shop answered (checked at the end)."""

    cash: int = 0
    card: int = 0
    split: int = 0
    declined: int = 0
    settled_in_cash: int = 0
    walked_away: int = 0
    tendered: int = 0
    """Cents the recorded checkouts' tenders paid."""
    by_card: int = 0
    """Cents of it paid by card (the terminal must have charged exactly this)."""
    change: int = 0

    def recorded(self, checked_out: CheckedOut) -> None:
        self.tendered += sum(tender.amount for tender in checked_out.tenders)
        self.by_card += sum(t.amount for t in checked_out.tenders if t.type == CARD)
        self.change += checked_out.change

    def problems(self, terminal: SimulatedTerminal, gross: int) -> list[str]:
        """What disagrees: tenders against the gross the demo computed itself, card
        tenders against what the terminal charged (a double charge shows here)."""
        found = []
        if self.tendered != gross:
            found.append(f"tenders paid {self.tendered}, the checkouts' gross is {gross}")
        if terminal.charged != self.by_card:
            found.append(f"the terminal charged {terminal.charged}, card tenders {self.by_card}")
        return found


async def pay(
    sale: SaleService, command: Checkout, total: int, rng: random.Random, payments: Payments
) -> tuple[Checkout, Receipt, CheckedOut] | None:
    """Ring up ``command`` (priced ``total``) paid as a customer would; the command as
    recorded with its receipt and checkout, or ``None`` when the customer walked away after
    a declined card. Refusals other than a decline are raised."""
    roll = rng.random()
    if roll < CASH_SHARE or total == 0:
        kind, tenders = "cash", [Tender(CASH, handed_over(rng, total))]
    elif roll < CASH_SHARE + CARD_SHARE:
        kind, tenders = "card", [Tender(CARD, total, f"card-{rng.randrange(10**6)}")]
    elif roll < CASH_SHARE + CARD_SHARE + SPLIT_SHARE and total > 1:
        on_card = rng.randint(1, total - 1)
        rest = Tender(CASH, handed_over(rng, total - on_card))
        kind, tenders = "split", [Tender(CARD, on_card, f"card-{rng.randrange(10**6)}"), rest]
    else:
        kind, tenders = "declined", [Tender(CARD, total, DECLINED_CARD)]
    paying = msgspec.structs.replace(command, tenders=tenders)
    try:
        receipt, recorded = await sale.checkout_recorded_async(paying)
    except CardDeclined:
        payments.declined += 1
        if rng.random() >= SETTLE_IN_CASH:
            payments.walked_away += 1
            return None
        payments.settled_in_cash += 1
        kind = "settled"
        paying = msgspec.structs.replace(command, tenders=[Tender(CASH, handed_over(rng, total))])
        receipt, recorded = await sale.checkout_recorded_async(paying)
    payments.cash += kind == "cash"
    payments.card += kind == "card"
    payments.split += kind == "split"
    payments.recorded(recorded)
    return paying, receipt, recorded
