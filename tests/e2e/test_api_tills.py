"""Till sessions over HTTP: a manager opens a till with a float and closes it with the count;
the X report shows the open session so far, the Z report the closed one with the difference;
a closed till refuses sales (409); bad input is a 4xx problem naming the field, nothing
written; retries with the session id answer the first receipt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


async def _sell(shop: Api, checkout_id: str, tenders: list[dict[str, Any]]) -> Any:
    body = {
        "checkout_id": checkout_id,
        "till_id": "t1",
        "lines": [{"product_id": "apple", "quantity": 5}],  # 600
        "tenders": tenders,
    }
    return await shop.post("/checkouts", body, role=Role.TILL)


async def test_a_day_at_a_till_from_open_to_z_report(shop: Api) -> None:
    opened = await shop.post("/tills/t1/open", {"float": 5000, "session_id": "mon"})
    assert opened.status_code == 201, opened.text
    assert opened.json()["session_id"] == "mon"
    again = await shop.post("/tills/t1/open", {"float": 5000}, headers={"Idempotency-Key": "mon"})
    assert again.json()["receipt"] == opened.json()["receipt"]
    assert (await _sell(shop, "c-1", [{"type": "cash", "amount": 1000}])).status_code == 201
    sold = await _sell(shop, "c-2", [{"type": "card", "amount": 600, "card": "tok"}])
    assert sold.status_code == 201, sold.text
    back = await shop.post(
        "/checkouts/c-1/returns",
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        role=Role.TILL,
    )
    assert back.status_code == 201, back.text
    token = back.json()["receipt"]["token"]
    x = await shop.get("/tills/t1/x-report", role=Role.MANAGER, params={"wait_for": token})
    assert x.status_code == 200, x.text
    report = x.json()
    assert report["freshness"]["waited"] == "reached" and report["final"] is False
    session = report["session"]
    assert {k: session["takings"][k] for k in ("sales", "returns", "cash", "card")} == {
        "sales": 2,
        "returns": 1,
        "cash": 600,
        "card": 600,
    }
    assert (session["takings"]["change"], session["takings"]["cash_refunds"]) == (400, 120)
    assert session["expected_cash"] == 5000 + 600 - 120

    closed = await shop.post("/tills/t1/close", {"counted": 5470, "session_id": "mon"})
    assert closed.status_code == 200, closed.text
    token = closed.json()["receipt"]["token"]
    z = await shop.get("/tills/t1/z-reports/mon", role=Role.MANAGER, params={"wait_for": token})
    assert z.status_code == 200, z.text
    assert z.json()["final"] is True
    assert (z.json()["session"]["counted"], z.json()["session"]["difference"]) == (5470, -10)
    retry = await shop.post("/tills/t1/close", {"counted": 5470, "session_id": "mon"})
    assert retry.json()["receipt"] == closed.json()["receipt"]

    refused = await _sell(shop, "c-3", [{"type": "cash", "amount": 600}])
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:tillflow:problem:till-not-open"
    assert refused.json()["errors"][0]["field"] == "till_id"
    back = await shop.post(
        "/checkouts/c-1/returns",
        {"return_id": "r-2", "lines": [{"product_id": "apple", "quantity": 1}]},
        role=Role.TILL,
    )
    assert back.status_code == 409 and back.json()["type"].endswith(":till-not-open")
    assert back.json()["errors"][0] | {"reason": ""} == {
        "field": "checkout_id",
        "location": "path",
        "reason": "",
    }


async def test_closing_a_till_that_is_not_open_is_409_and_writes_nothing(shop: Api) -> None:
    before = await shop.settled_heads()
    closed = await shop.post("/tills/t9/close", {"counted": 0})
    assert closed.status_code == 409, closed.text
    assert closed.json()["type"] == "urn:tillflow:problem:till-not-open"
    assert "'t9'" in closed.json()["detail"]
    await shop.post("/tills/t9/open", {"float": 0, "session_id": "a"})
    twice = await shop.post("/tills/t9/open", {"float": 0, "session_id": "b"})
    assert twice.status_code == 409 and twice.json()["type"].endswith(":till-open")
    assert (await shop.settled_heads())[0] == before[0] + 1  # the one open


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tills/t1/open", {"float": -1}, "float"),
        ("/tills/t1/open", {"float": 1.5}, "float"),
        ("/tills/t1/open", {"float": "5"}, "float"),
        ("/tills/t1/open", {"float": 0, "session_id": "no spaces"}, "session_id"),
        ("/tills/t1/close", {"counted": -3}, "counted"),
        ("/tills/t1/close", {}, "counted"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    shop: Api, path: str, body: dict[str, Any], field: str
) -> None:
    before = await shop.settled_heads()
    answer = await shop.post(path, body)
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == [field]
    assert await shop.settled_heads() == before


async def test_only_managers_open_tills_and_read_their_reports(shop: Api) -> None:
    assert (await shop.post("/tills/t1/open", {"float": 0}, role=Role.TILL)).status_code == 403
    assert (await shop.get("/tills/t1/x-report", role=Role.VIEWER)).status_code == 403
    unknown = await shop.get("/tills/nope/x-report", role=Role.MANAGER)
    assert unknown.status_code == 404 and unknown.json()["type"].endswith(":unknown-till")
    await shop.post("/tills/t1/open", {"float": 0, "session_id": "s"})
    still_open = await shop.get("/tills/t1/z-reports/s", role=Role.MANAGER)
    assert still_open.status_code == 404, still_open.text
