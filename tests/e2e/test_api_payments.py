"""Payment at the counter over HTTP: tenders on ``POST /checkouts`` (the fast path and the
route alike), a declined card answering 402 with no sale, tender errors answering 422 naming
the field, refunds to the card, and a slow terminal that does not serialize the tills."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PRODUCTS
from tests.e2e.servers import Api, served
from tests.gated_terminal import GatedTerminal
from tillflow.service.access_tokens import Role
from tillflow.shop.sale.events import CardDeclined, checkout_stream, till_stream
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal

BASKET = [{"product_id": "apple", "quantity": 2}, {"product_id": "pear", "quantity": 1}]  # 320


@pytest.fixture
def terminal() -> SimulatedTerminal:
    return SimulatedTerminal(decline_cards={"broke"})


@pytest.fixture
async def shop(tmp_path: Path, terminal: SimulatedTerminal) -> AsyncIterator[Api]:
    async with served(tmp_path / "shop.db", terminal=terminal) as api:
        for product_id, (name, price) in PRODUCTS.items():
            added = await api.post(
                "/catalog", {"product_id": product_id, "name": name, "price": price}
            )
            assert added.status_code == 201, added.text
        yield api


def sale(checkout_id: str, tenders: Any, till: str = "till-1") -> dict[str, Any]:
    return {"checkout_id": checkout_id, "till_id": till, "lines": BASKET, "tenders": tenders}


def card(amount: int = 320, reference: str = "tok-1") -> dict[str, Any]:
    return {"type": "card", "amount": amount, "card": reference}


ROUTES = {"fast path": {}, "route": {"headers": {"Idempotency-Key": "c-1"}}}
"""The plain request takes the fast path; an Idempotency-Key header sends it to the route."""


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_a_card_and_cash_split_answers_201_with_tenders_and_change(
    shop: Api, terminal: SimulatedTerminal, route: str
) -> None:
    body = sale("c-1", [card(120), {"type": "cash", "amount": 500}])
    response = await shop.post("/checkouts", body, role=Role.TILL, **ROUTES[route])
    assert response.status_code == 201, response.text
    checkout = response.json()["checkout"]
    paid_card, paid_cash = checkout["tenders"]
    assert (paid_card["type"], paid_card["amount"], paid_card["card"]) == ("card", 120, "tok-1")
    assert paid_card["reference"] and paid_card["code"]
    assert (paid_cash["type"], paid_cash["amount"], paid_cash["handed"]) == ("cash", 200, 500)
    assert checkout["change"] == 300
    assert terminal.charged == 120
    again = await shop.post("/checkouts", body, role=Role.TILL, **ROUTES[route])
    assert (again.status_code, again.json()) == (201, response.json())
    recorded = await shop.get("/checkouts/c-1", role=Role.TILL)
    assert recorded.json()["checkout"]["tenders"][0]["reference"] == paid_card["reference"]
    assert terminal.calls == 1


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_a_declined_card_answers_402_records_the_decline_and_no_sale(
    shop: Api, terminal: SimulatedTerminal, route: str
) -> None:
    before = await shop.settled_heads()
    declined = await shop.post(
        "/checkouts", sale("c-1", [card(reference="broke")]), role=Role.TILL, **ROUTES[route]
    )
    assert declined.status_code == 402, declined.text
    problem = declined.json()
    assert problem["type"] == "urn:tillflow:problem:card-declined"
    assert problem["errors"] == [
        {"field": "tenders[0]", "reason": "declined: insufficient funds", "location": "body"}
    ]
    after = await shop.settled_heads()
    assert sum(after.values()) - sum(before.values()) == 1  # the decline, nothing else
    [event] = shop.store.read_stream(till_stream("till-1"))
    assert event.decode(CardDeclined).reason == "insufficient funds"
    assert shop.store.stream_version(checkout_stream("c-1")) == 0
    stock = await shop.get("/stock/apple")
    assert stock.status_code == 200 and stock.json()["stock"] == 0, stock.text  # none taken

    again = await shop.post(
        "/checkouts", sale("c-1", [card(reference="broke")]), role=Role.TILL, **ROUTES[route]
    )
    assert (again.status_code, again.json()) == (402, problem)
    assert terminal.calls == 1
    cash = await shop.post(
        "/checkouts", sale("c-1", [{"type": "cash", "amount": 400}]), role=Role.TILL
    )
    assert cash.status_code == 201, cash.text
    assert cash.json()["checkout"]["change"] == 80


@pytest.mark.parametrize(
    ("tenders", "field"),
    [
        ([{"type": "cash", "amount": 319}], "tenders[0].amount"),
        ([{"type": "cash", "amount": -1}], "tenders[0].amount"),
        ([{"type": "cash", "amount": 2.5}], "tenders[0].amount"),
        ([{"type": "cash", "amount": "320"}], "tenders[0].amount"),
        ([card(319)], "tenders[0].amount"),
        ([card(100), {"type": "cash", "amount": 219}], "tenders[1].amount"),
        ([{"type": "cash", "amount": 320, "card": "tok"}], "tenders[0].card"),
        ([{**card(), "handed": 500}], "tenders[0].handed"),
        ([{"type": "card", "amount": 320}], "tenders[0].card"),
        ([{"type": "cheque", "amount": 320}], "tenders[0].type"),
        ([], "tenders"),
    ],
)
@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_bad_tenders_answer_422_naming_the_field_and_write_nothing(
    shop: Api, terminal: SimulatedTerminal, tenders: Any, field: str, route: str
) -> None:
    before = await shop.settled_heads()
    response = await shop.post("/checkouts", sale("c-1", tenders), role=Role.TILL, **ROUTES[route])
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]], response.text
    assert await shop.settled_heads() == before
    assert terminal.calls == 0


async def test_a_return_refunds_the_card_through_the_terminal(
    shop: Api, terminal: SimulatedTerminal
) -> None:
    rung = await shop.post("/checkouts", sale("c-1", [card()]), role=Role.TILL)
    assert rung.status_code == 201, rung.text
    body = {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]}
    returned = await shop.post("/checkouts/c-1/returns", body, role=Role.TILL)
    assert returned.status_code == 201, returned.text
    [refund] = returned.json()["returned"]["refunds"]
    assert (refund["type"], refund["amount"]) == ("card", 120)
    assert refund["authorization"] == rung.json()["checkout"]["tenders"][0]["reference"]
    again = await shop.post("/checkouts/c-1/returns", body, role=Role.TILL)
    assert (again.status_code, again.json()) == (201, returned.json())
    assert terminal.refunded == 120


async def test_a_terminal_timeout_answers_504_and_the_retry_charges_once(
    shop: Api, terminal: SimulatedTerminal
) -> None:
    terminal.offline = True
    timed_out = await shop.post("/checkouts", sale("c-1", [card()]), role=Role.TILL)
    assert timed_out.status_code == 504, timed_out.text
    assert timed_out.json()["type"] == "urn:tillflow:problem:terminal-timeout"
    assert shop.store.stream_version(checkout_stream("c-1")) == 0
    terminal.offline = False
    retried = await shop.post("/checkouts", sale("c-1", [card()]), role=Role.TILL)
    assert retried.status_code == 201, retried.text
    assert terminal.charged == 320 and terminal.charges_for("c-1") == 1
    terminal.timeout_every = 1  # approved, but the answer is lost: found by its key
    lost = await shop.post("/checkouts", sale("c-2", [card()]), role=Role.TILL)
    assert lost.status_code == 201, lost.text
    assert terminal.charged == 640 and terminal.charges_for("c-2") == 1


async def test_a_slow_terminal_does_not_serialize_tills(tmp_path: Path) -> None:
    """64 tills' card checkouts over HTTP have their authorizations in flight at once (the
    terminal answers none before): a request path that serialized them would never get
    there."""
    terminal = GatedTerminal(together=64)
    async with served(tmp_path / "shop.db", terminal=terminal) as shop:
        for product_id, (name, price) in PRODUCTS.items():
            added = await shop.post(
                "/catalog", {"product_id": product_id, "name": name, "price": price}
            )
            assert added.status_code == 201, added.text

        async def ring_up(number: int) -> None:
            body = sale(f"c-{number}", [card()], till=f"till-{number}")
            response = await shop.post("/checkouts", body, role=Role.TILL)
            assert response.status_code == 201, response.text

        await asyncio.gather(*(ring_up(number) for number in range(64)))
    assert terminal.most_in_flight == 64


async def test_a_card_refund_the_terminal_refuses_is_a_409_and_records_nothing(
    tmp_path: Path,
) -> None:
    """A terminal that does not know the approval (a simulated one after a restart: it kept
    its answers in memory) refuses the refund; nothing is recorded, the till is told why."""
    async with served(tmp_path / "shop.db", terminal=SimulatedTerminal()) as api:
        added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 120})
        assert added.status_code == 201, added.text
        body = sale("c-1", [card(120)]) | {"lines": [{"product_id": "apple", "quantity": 1}]}
        rung = await api.post("/checkouts", body, role=Role.TILL)
        assert rung.status_code == 201, rung.text
        tokens = api.tokens
    async with served(tmp_path / "shop.db", tokens, terminal=SimulatedTerminal()) as api:
        before = await api.settled_heads()
        returned = await api.post(
            "/checkouts/c-1/returns",
            {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
            role=Role.TILL,
        )
        assert returned.status_code == 409, returned.text
        assert returned.json()["type"] == "urn:tillflow:problem:terminal-refused"
        assert await api.settled_heads() == before
