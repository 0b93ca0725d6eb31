"""Over HTTP, a keyed command's retry answers byte for byte what its first call answered —
for every command that can write more than one event, through a restart of the server —
and a read that waited for a stock change's receipt is as of at least that change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.servers import Api, served
from tillflow.service.access_tokens import Role

MILK = {"product_id": "milk", "name": "Milk", "price": 99}
BIG_SALE = {"checkout_id": "big", "till_id": "t", "lines": [{"product_id": "milk", "quantity": 12}]}


async def _short_by_two(api: Api) -> httpx.Response:
    """Milk in the catalog, 10 on the shelf, a checkout of 12: stock −2, 2 short."""
    assert (await api.post("/catalog", MILK)).status_code == 201
    assert (await api.post("/stock/milk/deliveries", {"quantity": 10})).status_code == 201
    sold = await api.post("/checkouts", BIG_SALE, role=Role.TILL)
    assert sold.status_code == 201, sold.text
    waited = await api.get(
        "/stock/shortfalls", params={"wait_for": sold.json()["receipt"]["token"]}
    )
    assert [row["open_shortfall"] for row in waited.json()["shortfalls"]] == [2]
    return sold


async def _row_after(api: Api, reply: httpx.Response) -> dict[str, Any]:
    token = reply.json()["receipt"]["token"]
    read = await api.get("/report/products/milk", params={"wait_for": token, "timeout": 30})
    assert read.json()["freshness"]["waited"] == "reached", read.text
    row: dict[str, Any] = read.json()["row"]
    return row


async def _stock_change_is_retry_safe(
    tmp_path: Path, path: str, body: dict[str, Any], key: str, resolved_by: str
) -> None:
    database = tmp_path / "shop.db"
    async with served(database) as api:
        await _short_by_two(api)
        first = await api.post(path, body)
        assert first.status_code == 201, first.text
        assert first.json()["stock"]["version"] == 5  # 10 in, taken, short, change, resolved
        assert first.json()["receipt"]["streams"] == {"stock-milk": 5}
        again = await api.post(path, body)
        assert again.content == first.content
        by_header = {name: value for name, value in body.items() if not name.endswith("_id")}
        keyed = await api.post(path, by_header, headers={"Idempotency-Key": key})
        assert keyed.content == first.content
        row = await _row_after(api, first)
        assert row["as_of"]["version"] >= 5, f"{resolved_by}: the row is as of {row['as_of']}"
        assert row["open_shortfall"] == 0
        tokens = api.tokens
    async with served(database, tokens) as restarted:
        after_restart = await restarted.post(path, body)
        assert after_restart.content == first.content


async def test_a_delivery_that_clears_a_shortfall_answers_the_same_bytes_on_every_retry(
    tmp_path: Path,
) -> None:
    await _stock_change_is_retry_safe(
        tmp_path, "/stock/milk/deliveries", {"quantity": 5, "delivery_id": "d-1"}, "d-1", "delivery"
    )


async def test_a_count_that_clears_a_shortfall_answers_the_same_bytes_on_every_retry(
    tmp_path: Path,
) -> None:
    await _stock_change_is_retry_safe(
        tmp_path, "/stock/milk/counts", {"counted": 4, "count_id": "n-1"}, "n-1", "count"
    )


async def test_a_reorder_point_that_alerts_answers_the_same_bytes_on_every_retry(
    tmp_path: Path,
) -> None:
    """``ReorderPointSet`` and the ``LowStock`` appended with it: the receipt names the alert,
    a retry (body key, header, after a restart) answers it, the read that waited is as of it."""
    database = tmp_path / "shop.db"
    body = {"reorder_point": 12, "change_id": "p-1"}
    async with served(database) as api:
        assert (await api.post("/catalog", MILK)).status_code == 201
        assert (await api.post("/stock/milk/deliveries", {"quantity": 10})).status_code == 201
        first = await api.post("/stock/milk/reorder-point", body)
        assert first.status_code == 200, first.text
        assert first.json()["receipt"]["streams"] == {"stock-milk": 3}  # 10 in, point, alert
        assert (await api.post("/stock/milk/deliveries", {"quantity": 1})).status_code == 201
        again = await api.post("/stock/milk/reorder-point", body)
        assert again.content == first.content
        keyed = await api.post(
            "/stock/milk/reorder-point", {"reorder_point": 12}, headers={"Idempotency-Key": "p-1"}
        )
        assert keyed.content == first.content
        row = await _row_after(api, first)
        assert row["as_of"]["version"] >= 3 and row["low_alerts"] == 1, row
        tokens = api.tokens
    async with served(database, tokens) as restarted:
        after_restart = await restarted.post("/stock/milk/reorder-point", body)
        assert after_restart.content == first.content


async def test_a_retried_count_is_not_applied_again_after_the_shelf_moved_on(
    tmp_path: Path,
) -> None:
    async with served(tmp_path / "shop.db") as api:
        await _short_by_two(api)
        first = await api.post("/stock/milk/counts", {"counted": 4, "count_id": "n-1"})
        assert (await api.post("/stock/milk/deliveries", {"quantity": 6})).status_code == 201
        again = await api.post("/stock/milk/counts", {"counted": 4, "count_id": "n-1"})
        assert again.content == first.content
        level = await api.get("/stock/milk", role=Role.MANAGER)
        assert level.json()["stock"] == 10
        other = await api.post("/stock/milk/counts", {"counted": 3, "count_id": "n-1"})
        assert other.status_code == 409
        assert other.json()["errors"][0]["field"] == "count_id"


async def test_a_checkout_causing_a_shortfall_and_a_return_clearing_it_answer_the_same_bytes(
    tmp_path: Path,
) -> None:
    database = tmp_path / "shop.db"
    back = {"return_id": "r-1", "lines": [{"product_id": "milk", "quantity": 3}]}
    async with served(database) as api:
        sold = await _short_by_two(api)
        assert (await api.post("/checkouts", BIG_SALE, role=Role.TILL)).content == sold.content
        returned = await api.post("/checkouts/big/returns", back, role=Role.TILL)
        assert returned.status_code == 201, returned.text
        row = await _row_after(api, returned)
        assert row["open_shortfall"] == 0
        assert (await api.post("/checkouts/big/returns", back, role=Role.TILL)).content == (
            returned.content
        )
        tokens = api.tokens
    async with served(database, tokens) as restarted:
        assert (await restarted.post("/checkouts", BIG_SALE, role=Role.TILL)).content == (
            sold.content
        )
        assert (await restarted.post("/checkouts/big/returns", back, role=Role.TILL)).content == (
            returned.content
        )


async def test_a_checkout_retried_after_its_product_was_discontinued_gets_the_first_reply(
    tmp_path: Path,
) -> None:
    async with served(tmp_path / "shop.db") as api:
        sold = await _short_by_two(api)
        assert (await api.post("/catalog/milk/discontinue")).status_code == 200
        again = await api.post("/checkouts", BIG_SALE, role=Role.TILL)
        assert again.content == sold.content
        new = await api.post("/checkouts", {**BIG_SALE, "checkout_id": "new"}, role=Role.TILL)
        assert new.status_code == 422
