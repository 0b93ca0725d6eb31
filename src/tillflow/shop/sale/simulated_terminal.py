"""A card terminal in memory, for the demo, the tests and ``tillflow serve`` until a real
one is plugged in: it implements :class:`~tillflow.shop.sale.payments.PaymentTerminal` with
configurable declines, latency and timeouts, and remembers every answer by its key, so a
retry never charges twice.

Decline rules (any may apply; the first that does names the reason):

* ``decline_cards``: these card references are always declined (``insufficient funds``);
* ``decline_over``: amounts above this many cents are declined (``over the card's limit``);
* ``decline_every``: every n-th new authorization is declined (``declined by the issuer``).

``latency`` seconds pass (without holding a thread or a lock) before every answer.
``timeout_every``: every n-th new authorization is *made* but answered with
:class:`~tillflow.shop.sale.payments.TerminalTimeout` — the answer lost on its way back, the
case where a till must not charge twice. :meth:`SimulatedTerminal.interrupt_next` does the same
with any error (a crash of the till between the approval and the recorded sale). ``offline``:
every call times out and nothing is authorized (the terminal unreachable).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection
from dataclasses import dataclass, field

from tillflow.shop.sale.payments import (
    Approved,
    Authorization,
    Declined,
    Refunded,
    RefundExceedsCharge,
    TerminalKeyReused,
    TerminalTimeout,
    UnknownAuthorization,
)


@dataclass(frozen=True)
class _Asked:
    """What a key was first asked for, and the answer it got."""

    amount: int
    currency: str
    card: str
    answer: Authorization


@dataclass
class _Charge:
    amount: int
    refunded: int = 0


@dataclass
class SimulatedTerminal:
    """See the module docstring. Thread-safe; one instance may serve several event loops."""

    latency: float = 0.0
    decline_cards: Collection[str] = ()
    decline_over: int | None = None
    decline_every: int = 0
    timeout_every: int = 0
    offline: bool = False
    authorizations: int = field(default=0, init=False)
    """New authorization requests seen (a repeated key is not counted)."""
    calls: int = field(default=0, init=False)
    """Every ``authorize`` call, repeats included."""
    _asked: dict[str, _Asked] = field(default_factory=dict, init=False, repr=False)
    _charges: dict[str, _Charge] = field(default_factory=dict, init=False, repr=False)
    _refunds: dict[str, tuple[str, int, Refunded]] = field(
        default_factory=dict, init=False, repr=False
    )
    _interrupt: list[Exception] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def charged(self) -> int:
        """Cents charged to cards (approvals), before refunds."""
        with self._lock:
            return sum(charge.amount for charge in self._charges.values())

    @property
    def refunded(self) -> int:
        """Cents refunded to cards."""
        with self._lock:
            return sum(charge.refunded for charge in self._charges.values())

    def charges_for(self, key: str) -> int:
        """How many times ``key`` was charged: 0 or 1, never more."""
        with self._lock:
            asked = self._asked.get(key)
            return int(asked is not None and isinstance(asked.answer, Approved))

    def interrupt_next(self, error: Exception) -> None:
        """Make the next new authorization approve and remember, then raise ``error``."""
        with self._lock:
            self._interrupt.append(error)

    def _decision(self, number: int, amount: int, card: str) -> Authorization:
        if card in self.decline_cards:
            return Declined("insufficient funds")
        if self.decline_over is not None and amount > self.decline_over:
            return Declined("over the card's limit")
        if self.decline_every and number % self.decline_every == 0:
            return Declined("declined by the issuer")
        return Approved(f"{number:06d}", f"sim-{number:08d}")

    async def authorize(self, key: str, amount: int, currency: str, card: str) -> Authorization:
        interrupt: Exception | None = None
        with self._lock:
            self.calls += 1
            if self.offline:
                raise TerminalTimeout(key, self.latency)
            asked = self._asked.get(key)
            if asked is None:
                self.authorizations += 1
                number = self.authorizations
                asked = _Asked(amount, currency, card, self._decision(number, amount, card))
                self._asked[key] = asked
                if isinstance(asked.answer, Approved):
                    self._charges[asked.answer.reference] = _Charge(amount)
                    if self._interrupt:
                        interrupt = self._interrupt.pop(0)
                    elif self.timeout_every and number % self.timeout_every == 0:
                        interrupt = TerminalTimeout(key, self.latency)
            else:
                for name, first, now in (
                    ("amount", asked.amount, amount),
                    ("currency", asked.currency, currency),
                    ("card", asked.card, card),
                ):
                    if first != now:
                        raise TerminalKeyReused(key, name, now)
        await asyncio.sleep(self.latency)
        if interrupt is not None:
            raise interrupt
        return asked.answer

    async def lookup(self, key: str) -> Authorization | None:
        await asyncio.sleep(self.latency)
        with self._lock:
            if self.offline:
                raise TerminalTimeout(key, self.latency)
            asked = self._asked.get(key)
            return None if asked is None else asked.answer

    async def refund(self, key: str, reference: str, amount: int, currency: str) -> Refunded:
        with self._lock:
            if self.offline:
                raise TerminalTimeout(key, self.latency)
            done = self._refunds.get(key)
            if done is not None:
                if done[0] != reference:
                    raise TerminalKeyReused(key, "reference", reference)
                if done[1] != amount:
                    raise TerminalKeyReused(key, "amount", amount)
                answer = done[2]
            else:
                charge = self._charges.get(reference)
                if charge is None:
                    raise UnknownAuthorization(reference)
                left = charge.amount - charge.refunded
                if not 0 < amount <= left:
                    raise RefundExceedsCharge(reference, amount, left)
                charge.refunded += amount
                answer = Refunded(f"{reference}-r{len(self._refunds) + 1}")
                self._refunds[key] = (reference, amount, answer)
        await asyncio.sleep(self.latency)
        return answer
