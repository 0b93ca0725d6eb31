"""Stock over HTTP: deliveries and counts by managers, stock levels and open shortfalls."""

from __future__ import annotations

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


async def test_a_delivery_answers_with_the_stock_after_it_and_a_retry_records_once(
    shop: Api,
) -> None:
    first = await shop.post("/stock/apple/deliveries", {"quantity": 5, "delivery_id": "d-1"})
    assert first.status_code == 201, first.text
    assert first.json()["stock"] == {
        "product_id": "apple",
        "stock": 15,
        "short": 0,
        "reorder_point": 0,
        "low": False,
        "version": 2,
    }
    again = await shop.post("/stock/apple/deliveries", {"quantity": 5, "delivery_id": "d-1"})
    assert again.content == first.content
    keyed = await shop.post(
        "/stock/apple/deliveries", {"quantity": 5}, headers={"Idempotency-Key": "d-1"}
    )
    assert keyed.content == first.content
    other = await shop.post("/stock/apple/deliveries", {"quantity": 6, "delivery_id": "d-1"})
    assert other.status_code == 409
    level = await shop.get("/stock/apple")
    assert level.json() == {
        "product_id": "apple",
        "stock": 15,
        "short": 0,
        "reorder_point": 0,
        "low": False,
        "version": 2,
    }


async def test_an_oversell_is_an_open_shortfall_until_a_count_or_delivery_resolves_it(
    shop: Api,
) -> None:
    sold = await shop.post(
        "/checkouts",
        {"checkout_id": "big", "till_id": "t", "lines": [{"product_id": "milk", "quantity": 13}]},
        role=Role.TILL,
    )
    token = sold.json()["receipt"]["token"]
    short = await shop.get("/stock/shortfalls", params={"wait_for": token})
    assert short.status_code == 200
    assert short.json()["freshness"]["waited"] == "reached"
    [row] = short.json()["shortfalls"]
    assert (row["product_id"], row["open_shortfall"], row["stock_left"]) == ("milk", 3, -3)
    counted = await shop.post("/stock/milk/counts", {"counted": 2})
    assert counted.status_code == 201
    assert counted.json()["stock"]["stock"] == 2
    assert counted.json()["stock"]["short"] == 0
    token = counted.json()["receipt"]["token"]
    after = await shop.get("/stock/shortfalls", params={"wait_for": token}, role=Role.MANAGER)
    assert after.json()["shortfalls"] == []


async def test_stock_of_a_product_not_in_the_catalog_is_404_and_counts_below_zero_422(
    shop: Api,
) -> None:
    heads = await shop.settled_heads()
    unknown = await shop.post("/stock/kiwi/deliveries", {"quantity": 1})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0] == {
        "field": "product_id",
        "reason": "no such product in the catalog",
        "location": "path",
    }
    assert (await shop.post("/stock/kiwi/counts", {"counted": 1})).status_code == 404
    assert (await shop.get("/stock/kiwi")).status_code == 404
    negative = await shop.post("/stock/apple/counts", {"counted": -1})
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "counted"
    assert await shop.settled_heads() == heads
