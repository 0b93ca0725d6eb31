"""Cards through the terminal: authorize a checkout's card before the sale is recorded,
record a decline on the till's stream (no sale), refund a return's card part.

::

    checkout with a card ──► declined before? ── same command: CardDeclined again
                │                (CardDeclined event, id from the checkout id)
                ▼ no
        terminal.authorize(key=checkout id) ──Approved──► the checkout, authorized
                │                           ──Declined──► CardDeclined event on till-<till>
                ▼                                          + CardDeclined error (no sale)
         TerminalTimeout ──► terminal.lookup(key): the answer it gave after all (handled as
                          above), or none: TerminalTimeout, nothing recorded — a retry with
                          the same id finds an approval the terminal made, never charging twice

A declined checkout id answers its decline again to a retry of the same command, without
asking the terminal; the same id settled with cash only is a new answer (the sale); any
other card with that id is a :class:`~tillflow.shop.errors.CheckoutConflict` (the terminal
has answered that key: another card needs a new checkout id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

from tillflow.engine import EventIdReused, EventStore, NewEvent, id_from_key
from tillflow.shop.errors import CardDeclined, InvalidField
from tillflow.shop.sale import decisions, tenders
from tillflow.shop.sale.commands import Checkout
from tillflow.shop.sale.events import CardDeclined as CardDeclinedEvent
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, till_stream
from tillflow.shop.sale.payments import Declined, PaymentTerminal, TerminalTimeout

T = TypeVar("T")
DEFAULT_CURRENCY = "EUR"


def run_sync(call: Coroutine[Any, Any, T]) -> T:
    """Run a terminal call from synchronous code (a thread with no running event loop)."""
    return asyncio.run(call)


def decline_id(checkout_id: str) -> bytes:
    """The id of the ``CardDeclined`` event of ``checkout_id``: one decline per checkout id."""
    return id_from_key("card-declined", checkout_id)


class CardPayments:
    """The card steps of Sale's commands over one store and terminal (``None``: the shop
    takes no cards, and a card tender is refused)."""

    def __init__(
        self, store: EventStore, terminal: PaymentTerminal | None, currency: str = DEFAULT_CURRENCY
    ) -> None:
        self.store = store
        self.terminal = terminal
        self.currency = currency

    def _terminal(self, index: int) -> PaymentTerminal:
        if self.terminal is None:
            raise InvalidField(f"tenders[{index}].type", tenders.CARD, "this shop takes no cards")
        return self.terminal

    def declined_before(self, command: Checkout, index: int) -> None:
        """Raise what a checkout id whose card was declined answers ``command`` (which has
        a card tender at ``index``): :class:`CardDeclined` again for the same command,
        :class:`~tillflow.shop.errors.CheckoutConflict` for another. Nothing if none was."""
        found = self.store.get_event(decline_id(command.checkout_id))
        if found is None:
            return
        declined = found.decode(CardDeclinedEvent)
        decisions.same_checkout(declined, command)
        raise CardDeclined(command.checkout_id, f"tenders[{index}]", declined.reason)

    async def authorized(self, command: Checkout, decided: CheckedOut) -> CheckedOut:
        """``decided`` with its card tender authorized (as it is without a card); the caller
        has checked :meth:`declined_before` and that it is not recorded yet. A decline
        is recorded and raised as :class:`CardDeclined`. When the authorization times out, the
        terminal is asked what it answered for the key (``lookup``); :class:`TerminalTimeout`
        when it answered nothing (or does not answer that either) and
        :class:`TerminalKeyReused` pass through, nothing recorded."""
        found = tenders.card_of(decided.tenders)
        if found is None:
            return decided
        index, card = found
        terminal = self._terminal(index)
        assert card.card is not None  # settle() requires it of a card
        try:
            answer = await terminal.authorize(
                decided.checkout_id, card.amount, self.currency, card.card
            )
        except TerminalTimeout:
            earlier = await terminal.lookup(decided.checkout_id)  # it answered after all?
            if earlier is None:
                raise
            answer = earlier
        if isinstance(answer, Declined):
            await self._record_decline(decided, answer.reason)
            raise CardDeclined(decided.checkout_id, f"tenders[{index}]", answer.reason)
        paid = list(decided.tenders)
        paid[index] = msgspec.structs.replace(card, code=answer.code, reference=answer.reference)
        return msgspec.structs.replace(decided, tenders=paid)

    async def _record_decline(self, decided: CheckedOut, reason: str) -> None:
        event = CardDeclinedEvent(
            decided.checkout_id,
            decided.till_id,
            decided.at,
            decided.lines,
            decided.total,
            decided.tenders,
            reason,
        )
        new = NewEvent("CardDeclined", event, id=decline_id(decided.checkout_id))
        with contextlib.suppress(EventIdReused):  # a concurrent request recorded it first
            await self.store.append_async(till_stream(decided.till_id), [new])

    async def refunded(self, returned: ItemsReturned) -> ItemsReturned:
        """``returned`` with its card part refunded through the terminal (idempotency key:
        the return id), as it is without one."""
        parts = list(returned.refunds)
        for index, part in enumerate(parts):
            if part.type != tenders.CARD:
                continue
            assert part.authorization is not None  # split_refund names the approval
            done = await self._terminal(index).refund(
                returned.return_id, part.authorization, part.amount, self.currency
            )
            parts[index] = msgspec.structs.replace(part, reference=done.reference)
        return msgspec.structs.replace(returned, refunds=parts)
