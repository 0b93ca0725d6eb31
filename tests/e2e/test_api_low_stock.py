"""Low stock over HTTP: a manager sets reorder points; ``GET /stock/low`` lists the products
below theirs with since when; ``/metrics`` counts them and the alerts."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


def _sample(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


async def _sell(shop: Api, checkout_id: str, quantity: int) -> str:
    line = {"product_id": "apple", "quantity": quantity}
    body = {"checkout_id": checkout_id, "till_id": "t", "lines": [line]}
    sold = await shop.post("/checkouts", body, role=Role.TILL)
    assert sold.status_code == 201, sold.text
    token: str = sold.json()["receipt"]["token"]
    return token


async def _low(shop: Api, token: str) -> list[dict[str, Any]]:
    answer = await shop.get("/stock/low", params={"wait_for": token})
    assert answer.status_code == 200, answer.text
    assert answer.json()["freshness"]["waited"] == "reached"
    low: list[dict[str, Any]] = answer.json()["low"]
    return low


async def test_a_product_is_listed_and_counted_once_per_fall_below_its_reorder_point(
    shop: Api,
) -> None:
    point = await shop.post("/stock/apple/reorder-point", {"reorder_point": 5})
    assert point.status_code == 200, point.text
    assert point.json()["stock"] == {
        "product_id": "apple",
        "stock": 10,
        "short": 0,
        "reorder_point": 5,
        "low": False,
        "version": 2,
    }
    assert await _low(shop, point.json()["receipt"]["token"]) == []
    await _sell(shop, "c-1", 4)  # 6
    await _sell(shop, "c-2", 2)  # 4: below 5
    token = await _sell(shop, "c-3", 1)  # 3: the same spell
    [low] = await _low(shop, token)
    assert {key: low[key] for key in ("product_id", "name", "stock", "reorder_point")} == {
        "product_id": "apple",
        "name": "Apple",
        "stock": 3,
        "reorder_point": 5,
    }
    [alert] = [event for event in shop.store.read_stream("stock-apple") if event.type == "LowStock"]
    assert low["since"]["position"] == alert.position
    assert low["since"]["version"] == alert.version == 5
    assert low["as_of"]["version"] == 6
    metrics = (await shop.get("/metrics")).text
    assert _sample(metrics, "tillflow_low_stock_products") == 1
    assert _sample(metrics, "tillflow_low_stock_alerts_total") == 1

    delivered = await shop.post("/stock/apple/deliveries", {"quantity": 7})  # 10
    assert await _low(shop, delivered.json()["receipt"]["token"]) == []
    metrics = (await shop.get("/metrics")).text
    assert _sample(metrics, "tillflow_low_stock_products") == 0
    assert _sample(metrics, "tillflow_low_stock_alerts_total") == 1

    token = await _sell(shop, "c-4", 6)  # 4: a new fall
    assert [row["stock"] for row in await _low(shop, token)] == [4]
    metrics = (await shop.get("/metrics", role=Role.MANAGER)).text
    assert _sample(metrics, "tillflow_low_stock_alerts_total") == 2


async def test_a_point_raised_above_the_stock_is_low_at_once_and_the_dashboard_row_says_so(
    shop: Api,
) -> None:
    point = await shop.post("/stock/milk/reorder-point", {"reorder_point": 12})
    assert point.json()["stock"]["low"] is True
    token = point.json()["receipt"]["token"]
    [low] = await _low(shop, token)
    assert (low["product_id"], low["stock"], low["since"]["version"]) == ("milk", 10, 3)
    report = await shop.get("/report/products/milk", params={"wait_for": token})
    row = report.json()["row"]
    assert (row["reorder_point"], row["low"], row["low_alerts"]) == (12, True, 1)
    assert row["low_since"] == low["since"]


async def test_setting_a_reorder_point_is_retry_safe(shop: Api) -> None:
    first = await shop.post("/stock/pear/reorder-point", {"reorder_point": 3, "change_id": "p-1"})
    assert first.status_code == 200, first.text
    delivered = await shop.post("/stock/pear/deliveries", {"quantity": 1})
    assert delivered.status_code == 201  # a retry must not answer the stock as it is now
    again = await shop.post("/stock/pear/reorder-point", {"reorder_point": 3, "change_id": "p-1"})
    assert again.content == first.content
    keyed = await shop.post(
        "/stock/pear/reorder-point", {"reorder_point": 3}, headers={"Idempotency-Key": "p-1"}
    )
    assert keyed.content == first.content
    other = await shop.post("/stock/pear/reorder-point", {"reorder_point": 4, "change_id": "p-1"})
    assert other.status_code == 409
    assert other.json()["errors"][0] == {
        "field": "change_id",
        "reason": "already used with a different reorder_point",
        "location": "body",
    }
    heads = await shop.settled_heads()
    same = await shop.post("/stock/pear/reorder-point", {"reorder_point": 3})
    assert same.status_code == 200
    assert same.json()["stock"] == delivered.json()["stock"]
    assert await shop.settled_heads() == heads  # the point it has: nothing recorded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reorder_point": -1}, "reorder_point"),
        ({"reorder_point": 2.5}, "reorder_point"),
        ({"reorder_point": True}, "reorder_point"),
        ({"reorder_point": "5"}, "reorder_point"),
        ({"reorder_point": 10**9}, "reorder_point"),
        ({}, "reorder_point"),
        ({"reorder_point": 5, "change_id": "a b"}, "change_id"),
    ],
)
async def test_a_bad_reorder_point_is_a_422_naming_the_field_and_writes_nothing(
    shop: Api, body: dict[str, Any], field: str
) -> None:
    heads = await shop.settled_heads()
    refused = await shop.post("/stock/apple/reorder-point", body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == field
    assert await shop.settled_heads() == heads


async def test_an_unknown_product_is_404_and_only_managers_set_points(shop: Api) -> None:
    heads = await shop.settled_heads()
    unknown = await shop.post("/stock/kiwi/reorder-point", {"reorder_point": 1})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "product_id"
    for role in (Role.TILL, Role.VIEWER):
        refused: httpx.Response = await shop.post(
            "/stock/apple/reorder-point", {"reorder_point": 1}, role=role
        )
        assert refused.status_code == 403
    assert await shop.settled_heads() == heads
