"""The simulated card terminal: its decline rules, and its idempotency keys that make a retry
never charge (or refund) twice."""

from __future__ import annotations

import asyncio

import pytest

from tillflow.shop.sale.payments import (
    Approved,
    Declined,
    RefundExceedsCharge,
    TerminalKeyReused,
    TerminalTimeout,
    UnknownAuthorization,
)
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal


async def test_an_approval_is_remembered_by_key_and_charged_once() -> None:
    terminal = SimulatedTerminal()
    first = await terminal.authorize("c-1", 500, "EUR", "tok-1")
    again = await terminal.authorize("c-1", 500, "EUR", "tok-1")
    assert isinstance(first, Approved) and again == first
    assert await terminal.lookup("c-1") == first
    assert await terminal.lookup("c-2") is None
    assert (terminal.charged, terminal.charges_for("c-1"), terminal.authorizations) == (500, 1, 1)
    assert terminal.calls == 2


@pytest.mark.parametrize(
    ("terminal", "key", "amount", "card", "reason"),
    [
        (SimulatedTerminal(decline_cards={"stolen"}), "c-1", 500, "stolen", "insufficient funds"),
        (SimulatedTerminal(decline_over=1000), "c-1", 1001, "tok", "over the card's limit"),
        (SimulatedTerminal(decline_every=1), "c-1", 5, "tok", "declined by the issuer"),
    ],
)
async def test_decline_rules(
    terminal: SimulatedTerminal, key: str, amount: int, card: str, reason: str
) -> None:
    assert await terminal.authorize(key, amount, "EUR", card) == Declined(reason)
    assert await terminal.authorize(key, amount, "EUR", card) == Declined(reason)  # remembered
    assert terminal.charged == 0


async def test_every_nth_and_under_the_limit_are_approved() -> None:
    terminal = SimulatedTerminal(decline_every=3, decline_over=1000)
    answers = [await terminal.authorize(f"c-{n}", 1000, "EUR", "tok") for n in range(1, 7)]
    assert [isinstance(answer, Declined) for answer in answers] == [False, False, True] * 2


async def test_a_key_reused_with_another_amount_or_card_is_refused() -> None:
    terminal = SimulatedTerminal()
    await terminal.authorize("c-1", 500, "EUR", "tok-1")
    with pytest.raises(TerminalKeyReused) as refused:
        await terminal.authorize("c-1", 501, "EUR", "tok-1")
    assert refused.value.field == "amount"
    with pytest.raises(TerminalKeyReused) as refused:
        await terminal.authorize("c-1", 500, "EUR", "tok-2")
    assert refused.value.field == "card"
    assert terminal.charged == 500


async def test_a_timeout_after_the_approval_finds_it_on_retry() -> None:
    terminal = SimulatedTerminal(timeout_every=1)
    with pytest.raises(TerminalTimeout):
        await terminal.authorize("c-1", 500, "EUR", "tok")
    assert isinstance(await terminal.authorize("c-1", 500, "EUR", "tok"), Approved)
    assert terminal.charges_for("c-1") == 1 and terminal.charged == 500


async def test_an_offline_terminal_times_out_and_authorizes_nothing() -> None:
    terminal = SimulatedTerminal(offline=True)
    with pytest.raises(TerminalTimeout):
        await terminal.authorize("c-1", 500, "EUR", "tok")
    with pytest.raises(TerminalTimeout):
        await terminal.lookup("c-1")
    terminal.offline = False
    assert await terminal.lookup("c-1") is None and terminal.charged == 0


async def test_refunds_are_idempotent_and_bounded_by_the_charge() -> None:
    terminal = SimulatedTerminal()
    approved = await terminal.authorize("c-1", 500, "EUR", "tok")
    assert isinstance(approved, Approved)
    first = await terminal.refund("r-1", approved.reference, 300, "EUR")
    assert await terminal.refund("r-1", approved.reference, 300, "EUR") == first
    assert terminal.refunded == 300
    with pytest.raises(RefundExceedsCharge) as refused:
        await terminal.refund("r-2", approved.reference, 201, "EUR")
    assert refused.value.left == 200
    with pytest.raises(UnknownAuthorization):
        await terminal.refund("r-3", "sim-nope", 1, "EUR")
    with pytest.raises(TerminalKeyReused):
        await terminal.refund("r-1", approved.reference, 299, "EUR")
    assert terminal.refunded == 300


async def test_latency_is_awaited_without_serializing_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 concurrent calls are all in their latency at once: the terminal's lock is not held
    across the wait (a terminal that held it would have one call waiting at a time, and the
    gate below would never open)."""
    terminal = SimulatedTerminal(latency=0.2)
    waiting, everyone_in = 0, asyncio.Event()

    async def gate(seconds: float) -> None:
        nonlocal waiting
        assert seconds == 0.2
        waiting += 1
        if waiting == 16:
            everyone_in.set()
        await asyncio.wait_for(everyone_in.wait(), 60)

    monkeypatch.setattr(asyncio, "sleep", gate)  # the terminal awaits asyncio.sleep
    answers = await asyncio.gather(
        *(terminal.authorize(f"c-{n}", 1, "EUR", "tok") for n in range(16))
    )
    assert all(isinstance(answer, Approved) for answer in answers)
    assert waiting == 16
