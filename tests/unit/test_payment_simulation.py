"""Payments under the deterministic simulator: cash, cards, splits, declines and tills that
crash between the terminal's approval and the recorded sale, interleaved with the
processors' steps and crashes; tenders, gross and revenue checked at the end."""

from __future__ import annotations

import pytest

from tillflow.demos.simulation import ShopScenario, explore_shop
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale import tenders
from tillflow.shop.sale.payments import Approved, Authorization
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.testing import simulate


def test_payments_hold_under_hundreds_of_schedules() -> None:
    failures = explore_shop("barrier", range(200), stop_after=1)
    assert failures == [], str(failures[0]) if failures else ""


def test_a_run_declines_cards_and_crashes_after_approvals() -> None:
    seen: dict[str, int] = {}
    charged = 0
    for seed in range(10):
        scenario = ShopScenario("barrier")
        result = simulate(scenario, seed, 200, registry=REGISTRY)
        assert result.ok, str(result)
        for kind, count in scenario.payments.items():
            seen[kind] = seen.get(kind, 0) + count
        charged += scenario.terminal.charged
    assert seen.get("declined", 0) > 0 and seen.get("crashed", 0) > 0, seen
    assert charged > 0


class _KeylessTerminal(SimulatedTerminal):
    """A terminal that ignores idempotency keys: every call is a new charge."""

    async def authorize(self, key: str, amount: int, currency: str, card: str) -> Authorization:
        return await super().authorize(f"{key}/{self.calls}", amount, currency, card)

    def charges_for(self, key: str) -> int:
        with self._lock:
            return sum(
                isinstance(asked.answer, Approved)
                for sent, asked in self._asked.items()
                if sent.split("/")[0] == key
            )


def test_negative_control_a_terminal_without_keys_charges_twice_and_is_caught() -> None:
    for seed in range(50):
        scenario = ShopScenario("barrier", terminal=_KeylessTerminal(decline_cards={"card-broke"}))
        result = simulate(scenario, seed, 200, registry=REGISTRY)
        if not result.ok:
            assert "charged twice" in str(result), str(result)
            return
    pytest.fail("a terminal charging twice after a crash passed 50 schedules")


def test_negative_control_tenders_that_do_not_pay_the_total_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settle = tenders.settle

    def keeps_the_change(
        total: int, asked: object, field: str = "tenders"
    ) -> tuple[list[tenders.PaidTender], int]:
        paid, change = settle(total, asked, field)
        return [
            tenders.PaidTender(t.type, t.handed or t.amount, t.handed, t.card) for t in paid
        ], change

    monkeypatch.setattr(tenders, "settle", keeps_the_change)
    failures = explore_shop("barrier", range(50), stop_after=1)
    assert failures, "tenders paying more than the total passed 50 schedules"
    assert "differ" in str(failures[0]) or "tenders net of refunds" in str(failures[0])
