"""How the bench's checkouts pay, when they pay (cases 6b and 6c): tenders chosen by the
checkout's number, and the money the shop recorded for them, checked at the end.

::

    number % 3 == 0   cash: the smallest note that covers the total (change), or exact
    number % 3 == 1   card, the exact total
    number % 3 == 2   split: half the total by card, the rest in cash (often with change)

Cash is handed over as the demo's customers hand it over
(:func:`tillflow.demos.paying.handed_over`, drawn from a generator seeded with the number,
so a checkout pays the same in every run whatever order the tasks run in); the money seen is
the demo's :class:`~tillflow.demos.paying.Payments`. No card is declined.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

import msgspec

from tillflow.demos.paying import Payments, handed_over
from tillflow.shop.sale.commands import Checkout
from tillflow.shop.sale.events import CheckedOut
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import CARD, CASH, Tender

MIX: Final = ("cash", "card", "split")
"""The kind of payment of checkout ``n``: ``MIX[n % 3]``."""


def card_of(number: int) -> str:
    """The card reference checkout ``number`` pays with (no card is declined)."""
    return f"card-{number % 1000:03d}"


def tenders_for(number: int, total: int) -> list[Tender]:
    """The tenders of checkout ``number`` for ``total`` cents, by :data:`MIX`."""
    kind = MIX[number % len(MIX)]
    rng = random.Random(number)
    if kind == "cash" or total == 0:
        return [Tender(CASH, handed_over(rng, total))]
    if kind == "card" or total == 1:
        return [Tender(CARD, total, card_of(number))]
    on_card = total // 2
    return [Tender(CARD, on_card, card_of(number)), Tender(CASH, handed_over(rng, total - on_card))]


def by_card(number: int, total: int) -> list[Tender]:
    """Checkout ``number`` paid wholly by card."""
    return [Tender(CARD, total, card_of(number))]


class PaidCheckouts:
    """The checkouts' tenders and what the shop recorded for them, against ``terminal``."""

    def __init__(self, terminal: SimulatedTerminal) -> None:
        self.terminal = terminal
        self.payments = Payments()

    def paying(self, command: Checkout, tenders: list[Tender]) -> Checkout:
        """``command`` with ``tenders``, counted by kind."""
        has_card = any(tender.type == CARD for tender in tenders)
        has_cash = any(tender.type == CASH for tender in tenders)
        self.payments.cash += not has_card
        self.payments.card += has_card and not has_cash
        self.payments.split += has_card and has_cash
        return msgspec.structs.replace(command, tenders=tenders)

    def recorded(self, checked_out: CheckedOut) -> None:
        """A checkout as Sale recorded it (its tenders, as authorized)."""
        self.payments.recorded(checked_out)

    def problems(self, gross: int, checkouts: int) -> list[str]:
        """Tenders against ``gross`` (the accepted checkouts' totals, computed by the tills),
        card tenders against what the terminal charged, and one authorization per card
        checkout (``checkouts`` recorded in all)."""
        found = self.payments.problems(self.terminal, gross)
        cards = self.payments.card + self.payments.split
        if self.terminal.authorizations != cards or self.terminal.calls != cards:
            found.append(
                f"the terminal was asked {self.terminal.calls} times for "
                f"{self.terminal.authorizations} keys; {cards} checkouts pay by card"
            )
        if self.payments.cash + cards != checkouts:
            found.append(f"{self.payments.cash + cards} checkouts paid, {checkouts} recorded")
        return found

    def summary(self) -> str:
        paid = self.payments
        return (
            f"{paid.cash:,} cash, {paid.card:,} card, {paid.split:,} split; "
            f"{paid.change / 100:,.2f} change given"
        )


def gross_of(totals: Sequence[int], accepted: Sequence[int]) -> int:
    """Cents due for ``accepted[i]`` checkouts of ``totals[i]`` each."""
    return sum(total * times for total, times in zip(totals, accepted, strict=True))
