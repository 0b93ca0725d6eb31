"""Receipt numbers under seeded schedules: checkouts at three tills (some retried, some paid
by a card that is declined and then settled in cash) interleaved with single steps of the
cash-up's processor (``tills``, which numbers them), crashes, crashes inside a batch, failed
commits and commands landing inside a batch, on one to three lanes — and on simulated
workers sharing the lanes by leases. After every action each till's numbers given so far
are exactly 1..k; after the drain, 1..n, one per checkout. Negative controls: counters kept
in memory (lost in a crash), and the counter read around the batch's row guard (two workers
give the same number), are both caught."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tillflow.engine import EventStore, Processor, RecordedEvent, Session
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CardDeclined
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.receipts.numbering import (
    NUMBERS_VIEW,
    TILLS_VIEW,
    Numbered,
)
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import Tender
from tillflow.shop.tills.projection import NAME, tills_processor
from tillflow.testing import Leasing, SimulationResult, explore, simulate

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TILLS = ("till-1", "till-2", "till-3")


class ReceiptScenario:
    """Tills ringing up; ``numbering`` makes the processor (the shop's, or a broken one)."""

    def __init__(self, numbering: str = "shop") -> None:
        self.numbering = numbering
        self.terminal = SimulatedTerminal(decline_cards=frozenset({"broke"}))
        self.sent: list[Checkout] = []

    def processors(self, store: EventStore) -> list[Processor]:
        if self.numbering == "shop":
            return [tills_processor(batch_size=3)]
        return [
            Processor(NAME, _broken(self.numbering), types=frozenset({"CheckedOut"}), batch_size=3)
        ]

    def command(self, rng: random.Random, store: EventStore) -> str:
        sale = SaleService(store, lambda: NOON, self.terminal)
        if not self.sent and not sale.catalog().products:
            sale.add_product(AddProduct("apple", "Apple", 120))
            return "catalog"
        roll = rng.random()
        if self.sent and roll < 0.2:
            command = rng.choice(self.sent)  # a declined one was replaced by its cash
            sale.checkout(command)
            return f"retry {command.checkout_id}"
        card = "broke" if roll < 0.35 else "tok-1" if roll < 0.5 else None
        tenders = None if card is None else [Tender("card", 120, card)]
        till = rng.choice(TILLS)
        command = Checkout(f"c-{len(self.sent)}", till, [LineRequest("apple", 1)], tenders=tenders)
        self.sent.append(command)
        try:
            sale.checkout(command)
        except CardDeclined:  # no sale; settled in cash with the same id
            cash = Checkout(command.checkout_id, till, command.lines)
            self.sent[-1] = cash
            sale.checkout(cash)
            return f"{command.checkout_id} at {till}: declined, then cash"
        return f"{command.checkout_id} at {till}"

    def check(self, store: EventStore) -> list[str]:
        return numbering_violations(store, caught_up=False)

    def check_final(self, store: EventStore) -> list[str]:
        return numbering_violations(store)


def _broken(kind: str) -> Callable[[RecordedEvent, Session], None]:
    """The numbering handler done wrong: ``memory`` keeps the counters in the processor's
    cache (lost in a crash: numbers start again); ``unguarded`` reads the counter row
    around the session (so the commit does not check it is unchanged)."""

    def handle(event: RecordedEvent, session: Session) -> None:
        sale = event.decode(CheckedOut)
        if kind == "memory":
            last = int(session.cache.get(sale.till_id, 0))
            session.cache[sale.till_id] = last + 1
        else:
            raw = session.store.read_view(TILLS_VIEW, sale.till_id)
            last = int(
                session.scratch.get(sale.till_id) or (msgspec.json.decode(raw) if raw else 0)
            )
            session.scratch[sale.till_id] = last + 1
        session.put(TILLS_VIEW, sale.till_id, last + 1)
        session.put(NUMBERS_VIEW, sale.checkout_id, Numbered(sale.till_id, last + 1))

    return handle


def _failures(results: list[SimulationResult]) -> str:
    return "\n\n".join(str(result) for result in results[:2])


def test_numbers_stay_dense_per_till_through_crashes_and_redone_batches() -> None:
    failures = explore(ReceiptScenario, range(300), steps=60, stop_after=2)
    assert not failures, _failures(failures)


def test_numbers_stay_dense_per_till_on_workers_sharing_the_lanes() -> None:
    failures = explore(
        ReceiptScenario, range(120), steps=60, stop_after=2, lane_count=3, leasing=Leasing()
    )
    assert not failures, _failures(failures)


def test_negative_control_counters_kept_in_memory_are_caught() -> None:
    failures = explore(lambda: ReceiptScenario("memory"), range(100), steps=60, stop_after=1)
    assert failures, "counters lost in a crash went unnoticed"


def test_negative_control_a_counter_read_around_the_row_guard_is_caught() -> None:
    failures = explore(
        lambda: ReceiptScenario("unguarded"),
        range(200),
        steps=60,
        stop_after=1,
        lane_count=3,
        leasing=Leasing(),
    )
    assert failures, "two workers giving the same number went unnoticed"


def test_a_seed_replays_exactly() -> None:
    first = simulate(ReceiptScenario(), 11, 60, registry=REGISTRY)
    again = simulate(ReceiptScenario(), 11, 60, registry=REGISTRY)
    assert first.ok and first.trace == again.trace
