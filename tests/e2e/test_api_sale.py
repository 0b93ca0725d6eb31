"""Checkouts and returns over HTTP: tills ring up sales idempotently and take returns."""

from __future__ import annotations

from typing import Any

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


def sale(checkout_id: str | None = "c-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "till_id": "till-1",
        "lines": [{"product_id": "apple", "quantity": 2}, {"product_id": "pear", "quantity": 1}],
    }
    if checkout_id is not None:
        body["checkout_id"] = checkout_id
    return {**body, **changes}


async def test_a_checkout_answers_201_with_the_sale_as_recorded_and_its_receipt(
    shop: Api,
) -> None:
    response = await shop.post("/checkouts", sale(at="2026-05-01T12:00:00+02:00"), role=Role.TILL)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["checkout"] == {
        "checkout_id": "c-1",
        "till_id": "till-1",
        "at": "2026-05-01T10:00:00Z",
        "lines": [
            {
                "product_id": "apple",
                "name": "Apple",
                "quantity": 2,
                "unit_price": 120,
                "line_total": 240,
                "tax_rate": "standard",  # 20 %, tax included in the price
                "basis_points": 2000,
                "tax": 40,
                "net": 200,
                "gtin": None,
            },
            {
                "product_id": "pear",
                "name": "Pear",
                "quantity": 1,
                "unit_price": 80,
                "line_total": 80,
                "tax_rate": "standard",
                "basis_points": 2000,
                "tax": 13,  # 13.33
                "net": 67,
                "gtin": None,
            },
        ],
        "total": 320,
        "tenders": [  # none sent: the exact total in cash
            {
                "type": "cash",
                "amount": 320,
                "handed": 320,
                "card": None,
                "code": None,
                "reference": None,
            }
        ],
        "change": 0,
        "session_id": None,  # the till was never opened: no session
    }
    assert body["receipt"]["streams"] == {"checkout-c-1": 1}
    [position] = body["receipt"]["positions"].values()
    [event] = shop.store.read(0, position - 1, position)
    assert (event.stream, event.type) == ("checkout-c-1", "CheckedOut")
    assert isinstance(body["receipt"]["token"], str)
    recorded = await shop.get("/checkouts/c-1", role=Role.TILL)
    assert recorded.json() == {"checkout": body["checkout"], "returns": []}


async def test_the_same_key_and_body_again_gets_the_same_response_and_records_nothing(
    shop: Api,
) -> None:
    first = await shop.post("/checkouts", sale(), role=Role.TILL)
    await shop.post("/catalog/apple/reprice", {"price": 999})
    heads = await shop.settled_heads()
    again = await shop.post("/checkouts", sale(), role=Role.TILL)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert await shop.settled_heads() == heads


async def test_an_idempotency_key_header_stands_for_the_checkout_id(shop: Api) -> None:
    keyed = {"Idempotency-Key": "k-77"}
    first = await shop.post("/checkouts", sale(None), role=Role.TILL, headers=keyed)
    assert first.status_code == 201
    assert first.json()["checkout"]["checkout_id"] == "k-77"
    again = await shop.post("/checkouts", sale(None), role=Role.TILL, headers=keyed)
    assert again.content == first.content
    both = await shop.post("/checkouts", sale("k-77"), role=Role.TILL, headers=keyed)
    assert both.content == first.content


async def test_the_same_key_with_another_body_is_409_and_nothing_is_written(shop: Api) -> None:
    await shop.post("/checkouts", sale(), role=Role.TILL)
    heads = await shop.settled_heads()
    other = sale(lines=[{"product_id": "apple", "quantity": 3}])
    conflict = await shop.post("/checkouts", other, role=Role.TILL)
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "urn:tillflow:problem:idempotency-conflict"
    assert conflict.json()["errors"] == [
        {
            "field": "checkout_id",
            "reason": "already used with a different lines",
            "location": "body",
        }
    ]
    other_till = await shop.post("/checkouts", sale(till_id="till-2"), role=Role.TILL)
    assert other_till.status_code == 409
    assert await shop.settled_heads() == heads


async def test_a_key_is_required_and_body_and_header_keys_must_agree(shop: Api) -> None:
    missing = await shop.post("/checkouts", sale(None), role=Role.TILL)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "checkout_id"
    mismatch = await shop.post(
        "/checkouts", sale("a-1"), role=Role.TILL, headers={"Idempotency-Key": "b-1"}
    )
    assert mismatch.status_code == 422
    bad_header = await shop.post(
        "/checkouts", sale(None), role=Role.TILL, headers={"Idempotency-Key": "no spaces"}
    )
    assert bad_header.status_code == 422
    assert bad_header.json()["errors"][0] == {
        "field": "Idempotency-Key",
        "reason": "may hold only letters, digits and . _ : - ",
        "location": "header",
    }


async def test_unknown_or_discontinued_products_in_the_lines_are_422_naming_the_line(
    shop: Api,
) -> None:
    unknown = sale(
        lines=[{"product_id": "apple", "quantity": 1}, {"product_id": "kiwi", "quantity": 1}]
    )
    response = await shop.post("/checkouts", unknown, role=Role.TILL)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:tillflow:problem:unknown-product"
    assert response.json()["errors"][0]["field"] == "lines[1].product_id"
    await shop.post("/catalog/pear/discontinue")
    gone = await shop.post("/checkouts", sale("c-2"), role=Role.TILL)
    assert gone.status_code == 422
    assert gone.json()["type"] == "urn:tillflow:problem:product-discontinued"


async def test_a_return_is_refunded_at_the_price_paid_and_never_exceeds_the_purchase(
    shop: Api,
) -> None:
    await shop.post("/checkouts", sale(), role=Role.TILL)
    await shop.post("/catalog/apple/reprice", {"price": 500})
    body = {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]}
    returned = await shop.post("/checkouts/c-1/returns", body, role=Role.TILL)
    assert returned.status_code == 201, returned.text
    assert returned.json()["returned"]["refund_total"] == 120
    assert returned.json()["receipt"]["streams"] == {"checkout-c-1": 2}
    again = await shop.post("/checkouts/c-1/returns", body, role=Role.TILL)
    assert again.content == returned.content
    heads = await shop.settled_heads()
    too_many = {"return_id": "r-2", "lines": [{"product_id": "apple", "quantity": 2}]}
    refused = await shop.post("/checkouts/c-1/returns", too_many, role=Role.TILL)
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:tillflow:problem:return-exceeds-purchase"
    not_sold = {"return_id": "r-3", "lines": [{"product_id": "milk", "quantity": 1}]}
    assert (await shop.post("/checkouts/c-1/returns", not_sold, role=Role.TILL)).status_code == 422
    nowhere = await shop.post(
        "/checkouts/c-404/returns", body | {"return_id": "r-4"}, role=Role.TILL
    )
    assert nowhere.status_code == 404
    assert nowhere.json()["type"] == "urn:tillflow:problem:unknown-checkout"
    assert await shop.settled_heads() == heads
    history = (await shop.get("/checkouts/c-1")).json()
    assert [r["return_id"] for r in history["returns"]] == ["r-1"]
    assert (await shop.get("/checkouts/c-404")).status_code == 404
