"""The card terminal as Sale sees it: the :class:`PaymentTerminal` port, what a real terminal
SDK implements, and its answers.

::

    SaleService ──authorize(key=checkout id, amount, currency, card)──► terminal
                ◄── Approved(code, reference) | Declined(reason) | TerminalTimeout
    SaleService ──refund(key=return id, reference, amount, currency)──► Refunded(reference)

Every call carries an idempotency key, and a terminal must honour it: the same key again
answers what it answered first — the same approval, the same decline, the same refund —
without charging or refunding again. That is what makes a retry after a crash between
"approved" and "recorded" safe. The same key with another amount is
:class:`TerminalKeyReused`. The calls are ``async``: a slow authorization (a customer typing
a PIN) must not hold a thread other tills need.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from tillflow.engine.errors import TillflowError, shown


class Approved(msgspec.Struct, frozen=True):
    """The terminal took the money: ``code`` is the issuer's authorization code (printed on
    the receipt), ``reference`` the terminal's id of the transaction (refunds name it)."""

    code: str
    reference: str


class Declined(msgspec.Struct, frozen=True):
    """The card was refused; ``reason`` as the terminal words it (``insufficient funds``)."""

    reason: str


class Refunded(msgspec.Struct, frozen=True):
    """Money sent back to the card of an earlier approval; ``reference`` of the refund."""

    reference: str


Authorization = Approved | Declined


class TerminalTimeout(TillflowError):
    """The terminal did not answer in time. It may or may not have authorized: retry with
    the same idempotency key, which finds an approval it made instead of charging again."""

    def __init__(self, key: str, seconds: float) -> None:
        self.key = key
        self.seconds = seconds
        super().__init__(
            f"the card terminal did not answer for key {key!r} within {seconds:g} s; "
            "retry with the same id (it will not charge twice)"
        )


class TerminalKeyReused(TillflowError):
    """An idempotency key sent to the terminal again with another ``field`` (amount, card)."""

    def __init__(self, key: str, field: str, value: object) -> None:
        self.key = key
        self.field = field
        self.value = value
        super().__init__(
            f"the card terminal already answered key {key!r} with a different {field} "
            f"(not {shown(value)})"
        )


class UnknownAuthorization(TillflowError):
    """A refund naming an approval the terminal never made."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"reference={reference!r}: the terminal made no such approval")


class RefundExceedsCharge(TillflowError):
    """A card refund of more than is left of the approval it names."""

    def __init__(self, reference: str, amount: int, left: int) -> None:
        self.reference = reference
        self.amount = amount
        self.left = left
        super().__init__(
            f"amount={amount}: approval {reference!r} has {left} cent(s) left to refund"
        )


class PaymentTerminal(Protocol):
    """The port a card terminal (or its SDK) implements. Amounts are integer minor units
    of ``currency`` (ISO 4217). Each call may raise :class:`TerminalTimeout`."""

    async def authorize(self, key: str, amount: int, currency: str, card: str) -> Authorization:
        """Charge ``amount`` to ``card`` (a token or reference the till read from the card,
        never its number). ``key`` seen before: its first answer, nothing charged again;
        :class:`TerminalKeyReused` if the amount, currency or card differ."""
        ...

    async def lookup(self, key: str) -> Authorization | None:
        """The answer ``authorize`` gave for ``key``, or ``None`` if it was never asked."""
        ...

    async def refund(self, key: str, reference: str, amount: int, currency: str) -> Refunded:
        """Send ``amount`` back to the card of approval ``reference``. ``key`` seen before:
        its first answer, nothing refunded again. Raises :class:`UnknownAuthorization`,
        :class:`RefundExceedsCharge`, :class:`TerminalKeyReused`."""
        ...
