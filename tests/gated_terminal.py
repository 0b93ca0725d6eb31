"""A card terminal that answers only once ``together`` authorizations are in flight at once:
what shows, without timing anything, that a path does not serialize authorizations (one that
does never gets there, and each waiting call fails after ``deadline`` seconds)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tillflow.shop.sale.payments import Authorization
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal


@dataclass
class GatedTerminal(SimulatedTerminal):
    together: int = 64
    deadline: float = 60.0
    most_in_flight: int = field(default=0, init=False)
    _in_flight: int = field(default=0, init=False)
    _all_in: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def authorize(self, key: str, amount: int, currency: str, card: str) -> Authorization:
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        if self._in_flight >= self.together:
            self._all_in.set()
        try:
            await asyncio.wait_for(self._all_in.wait(), self.deadline)
        finally:
            self._in_flight -= 1
        return await super().authorize(key, amount, currency, card)
