"""Payment at the counter through the sale service: a card is authorized before the sale is
recorded, a decline records no sale, a retry never charges twice, refunds go back to the
tender that paid."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.gated_terminal import GatedTerminal
from tillflow.engine import EventStore, MemoryEventStore, NewEvent, RecordedEvent, id_from_key
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CardDeclined, CheckoutConflict, InvalidField
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import (
    CardDeclined as CardDeclinedEvent,
)
from tillflow.shop.sale.events import (
    CheckedOut,
    ItemsReturned,
    checkout_stream,
    till_stream,
)
from tillflow.shop.sale.payments import TerminalTimeout
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import CARD, CASH, PaidTender, RefundTender, Tender

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BASKET = [LineRequest("apple", 3), LineRequest("bread", 1)]  # 3 × 120 + 250 = 610


@pytest.fixture
def store() -> EventStore:
    return MemoryEventStore(registry=REGISTRY)


@pytest.fixture
def terminal() -> SimulatedTerminal:
    return SimulatedTerminal(decline_cards={"broke"})


@pytest.fixture
def sale(store: EventStore, terminal: SimulatedTerminal) -> SaleService:
    service = SaleService(store, clock=lambda: NOON, terminal=terminal)
    service.add_product(AddProduct("apple", "Apple", 120))
    service.add_product(AddProduct("bread", "Bread", 250))
    return service


def _card(card: str = "tok-1", amount: int = 610) -> list[Tender]:
    return [Tender(CARD, amount, card)]


def _log(store: EventStore) -> list[RecordedEvent]:
    return [event for lane in range(store.lane_count) for event in store.iter_all(lane)]


def _recorded(store: EventStore, checkout_id: str) -> CheckedOut:
    return store.read_stream(checkout_stream(checkout_id))[0].decode(CheckedOut)


def test_an_approved_card_is_recorded_with_its_authorization(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=_card()))
    [paid] = _recorded(store, "c-1").tenders
    assert (paid.type, paid.amount, paid.card) == (CARD, 610, "tok-1")
    assert paid.code is not None and paid.reference is not None
    assert terminal.charged == 610 and terminal.charges_for("c-1") == 1


def test_a_declined_card_records_the_decline_on_the_tills_stream_and_no_sale(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    before = _log(store)
    with pytest.raises(CardDeclined) as declined:
        sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=_card("broke")))
    assert (declined.value.field, declined.value.reason) == ("tenders[0]", "insufficient funds")
    new = _log(store)[len(before) :]
    assert [event.type for event in new] == ["CardDeclined"]  # no CheckedOut: nothing sold
    assert new[0].stream == till_stream("till-1")
    recorded = new[0].decode(CardDeclinedEvent)
    assert (recorded.checkout_id, recorded.total, recorded.reason) == (
        "c-1",
        610,
        "insufficient funds",
    )
    assert store.stream_version(checkout_stream("c-1")) == 0
    assert terminal.charged == 0


def test_a_retry_of_a_declined_checkout_answers_the_decline_without_the_terminal(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    command = Checkout("c-1", "till-1", BASKET, tenders=_card("broke"))
    with pytest.raises(CardDeclined):
        sale.checkout(command)
    calls, log = terminal.calls, len(_log(store))
    with pytest.raises(CardDeclined) as again:
        sale.checkout(command)
    assert again.value.reason == "insufficient funds"
    assert (terminal.calls, len(_log(store))) == (calls, log)


def test_after_a_decline_the_same_checkout_id_is_settled_in_cash(
    store: EventStore, sale: SaleService
) -> None:
    declined = Checkout("c-1", "till-1", BASKET, tenders=_card("broke"))
    with pytest.raises(CardDeclined):
        sale.checkout(declined)
    cash = Checkout("c-1", "till-1", BASKET, tenders=[Tender(CASH, 1000)])
    receipt = sale.checkout(cash)
    recorded = _recorded(store, "c-1")
    assert [t.type for t in recorded.tenders] == [CASH] and recorded.change == 390
    assert sale.checkout(cash) == receipt
    with pytest.raises(CardDeclined):  # the declined request still answers what it did
        sale.checkout(declined)
    with pytest.raises(CheckoutConflict) as conflict:  # another card needs a new id
        sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=_card("tok-2")))
    assert conflict.value.field == "tenders"


@pytest.mark.parametrize("path", ["checkout", "checkout_async"])
def test_a_crash_between_approval_and_recording_finds_the_approval_on_retry(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal, path: str
) -> None:
    command = Checkout("c-1", "till-1", BASKET, tenders=_card())

    def ring_up() -> object:
        if path == "checkout":
            return sale.checkout(command)
        return asyncio.run(sale.checkout_async(command))

    terminal.interrupt_next(RuntimeError("the till lost power"))
    with pytest.raises(RuntimeError):
        ring_up()
    assert store.stream_version(checkout_stream("c-1")) == 0
    assert terminal.charges_for("c-1") == 1
    ring_up()
    [paid] = _recorded(store, "c-1").tenders
    assert paid.reference is not None
    assert terminal.authorizations == 1 and terminal.charged == 610  # charged once


def test_an_answer_lost_on_its_way_back_is_looked_up_and_charged_once(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    terminal.timeout_every = 1  # the terminal approves, the answer times out
    sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=_card()))
    [paid] = _recorded(store, "c-1").tenders
    assert paid.reference is not None
    assert terminal.charged == 610 and terminal.charges_for("c-1") == 1


def test_an_unreachable_terminal_records_nothing_and_the_retry_charges_once(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    terminal.offline = True
    command = Checkout("c-1", "till-1", BASKET, tenders=_card())
    before = len(_log(store))
    with pytest.raises(TerminalTimeout):
        sale.checkout(command)
    assert len(_log(store)) == before and terminal.charged == 0
    terminal.offline = False
    sale.checkout(command)
    assert terminal.charged == 610 and terminal.charges_for("c-1") == 1


def test_a_retry_of_a_recorded_card_checkout_answers_it_without_the_terminal(
    sale: SaleService, terminal: SimulatedTerminal
) -> None:
    command = Checkout("c-1", "till-1", BASKET, tenders=_card())
    receipt = sale.checkout(command)
    assert sale.checkout(command) == receipt
    assert terminal.calls == 1
    with pytest.raises(CheckoutConflict) as conflict:
        sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=[Tender(CASH, 610)]))
    assert conflict.value.field == "tenders"


def test_split_tender_records_card_and_cash_summing_to_the_total(
    store: EventStore, sale: SaleService
) -> None:
    sale.checkout(
        Checkout("c-1", "till-1", BASKET, tenders=[Tender(CARD, 400, "t"), Tender(CASH, 500)])
    )
    recorded = _recorded(store, "c-1")
    assert [(t.type, t.amount) for t in recorded.tenders] == [(CARD, 400), (CASH, 210)]
    assert sum(t.amount for t in recorded.tenders) == recorded.total and recorded.change == 290


@pytest.mark.parametrize(
    ("tenders", "field"),
    [
        ([Tender(CASH, 609)], "tenders[0].amount"),
        ([Tender(CARD, 609, "t")], "tenders[0].amount"),
        ([Tender(CASH, -5)], "tenders[0].amount"),
        ([Tender(CASH, 610, "t")], "tenders[0].card"),
    ],
)
def test_bad_tenders_are_refused_naming_the_field_and_nothing_is_written(
    store: EventStore,
    sale: SaleService,
    terminal: SimulatedTerminal,
    tenders: list[Tender],
    field: str,
) -> None:
    before = len(_log(store))
    with pytest.raises(InvalidField) as refused:
        sale.checkout(Checkout("c-1", "till-1", BASKET, tenders=tenders))
    assert refused.value.field == field
    assert len(_log(store)) == before and terminal.calls == 0


def test_a_shop_without_a_terminal_refuses_cards(store: EventStore) -> None:
    sale = SaleService(store, clock=lambda: NOON)
    sale.add_product(AddProduct("apple", "Apple", 120))
    with pytest.raises(InvalidField) as refused:
        sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 1)], tenders=_card(amount=120)))
    assert refused.value.field == "tenders[0].type"
    assert store.stream_version(checkout_stream("c-1")) == 0


def test_returns_refund_the_card_first_through_the_terminal_then_cash(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    sale.checkout(
        Checkout("c-1", "till-1", BASKET, tenders=[Tender(CARD, 300, "t"), Tender(CASH, 310)])
    )
    first = ReturnItems("r-1", "c-1", [LineRequest("bread", 1)])  # 250: all to the card
    receipt = sale.return_items(first)
    assert sale.return_items(first) == receipt  # a retry refunds nothing again
    sale.return_items(ReturnItems("r-2", "c-1", [LineRequest("apple", 1)]))  # 50 card, 70 cash
    returns = [
        event.decode(ItemsReturned)
        for event in store.read_stream(checkout_stream("c-1"))
        if event.type == "ItemsReturned"
    ]
    [card_only], [card_part, cash_part] = (r.refunds for r in returns)
    assert (card_only.type, card_only.amount, card_part.type, card_part.amount) == (
        CARD,
        250,
        CARD,
        50,
    )
    assert card_only.reference is not None and card_part.reference is not None
    assert cash_part == RefundTender(CASH, 70)
    assert terminal.refunded == 300


def test_checkout_many_authorizes_cards_and_keeps_each_answer(
    store: EventStore, sale: SaleService, terminal: SimulatedTerminal
) -> None:
    outcomes = sale.checkout_many(
        [
            Checkout("c-1", "till-1", BASKET),
            Checkout("c-2", "till-1", BASKET, tenders=_card()),
            Checkout("c-3", "till-1", BASKET, tenders=_card("broke")),
        ]
    )
    assert isinstance(outcomes[2], CardDeclined)
    assert _recorded(store, "c-2").tenders[0].reference is not None
    assert _recorded(store, "c-1").tenders[0].type == CASH
    assert store.stream_version(checkout_stream("c-3")) == 0
    assert terminal.charged == 610


async def test_a_slow_terminal_does_not_serialize_tills(store: EventStore) -> None:
    """64 tills' authorizations are all in flight at once (the terminal answers none before);
    a sale path that waited for one answer before asking the next would never get there."""
    terminal = GatedTerminal(together=64)
    sale = SaleService(store, clock=lambda: NOON, terminal=terminal)
    sale.add_product(AddProduct("apple", "Apple", 120))

    def command(number: int) -> Checkout:
        lines = [LineRequest("apple", 1)]
        return Checkout(f"c-{number}", f"till-{number}", lines, tenders=_card(amount=120))

    await asyncio.gather(*(sale.checkout_async(command(n)) for n in range(64)))
    assert terminal.most_in_flight == 64
    assert terminal.charged == 64 * 120


def test_a_checkout_recorded_before_tenders_is_answered_and_refunded_as_cash(
    store: EventStore, sale: SaleService
) -> None:
    """Events from before payments carry no tenders: they read as paid in cash (upcast), a
    retry is answered with them, and a return refunds in cash."""
    old = {
        "checkout_id": "c-old",
        "till_id": "till-1",
        "at": "2026-01-01T12:00:00Z",
        "lines": [
            {
                "product_id": "apple",
                "name": "Apple",
                "quantity": 2,
                "unit_price": 120,
                "line_total": 240,
            }
        ],
        "total": 240,
    }
    receipt = store.append(
        checkout_stream("c-old"), [NewEvent("CheckedOut", old, id=id_from_key("checkout", "c-old"))]
    )
    recorded = _recorded(store, "c-old")
    assert (recorded.tenders, recorded.change) == ([PaidTender(CASH, 240, handed=240)], 0)
    command = Checkout("c-old", "till-1", [LineRequest("apple", 2)])  # no tenders: exact cash
    assert sale.checkout(command) == receipt
    with pytest.raises(CheckoutConflict):
        sale.checkout(
            Checkout("c-old", "till-1", [LineRequest("apple", 2)], tenders=_card(amount=240))
        )
    sale.return_items(ReturnItems("r-old", "c-old", [LineRequest("apple", 1)]))
    [returned] = [
        event.decode(ItemsReturned)
        for event in store.read_stream(checkout_stream("c-old"))
        if event.type == "ItemsReturned"
    ]
    assert returned.refunds == [RefundTender(CASH, 120)]
