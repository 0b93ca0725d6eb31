"""The HTTP API on PostgreSQL (over ASGI, processors running): a checkout, its retry and a
read of one's own writes behave as on SQLite, and bad input writes nothing."""

from __future__ import annotations

from tests.e2e.servers import serving
from tillflow.engine.postgres import PostgresEventStore
from tillflow.service.access_tokens import Role
from tillflow.service.bootstrap import service_registry

SALE = {"checkout_id": "c-1", "till_id": "t", "lines": [{"product_id": "milk", "quantity": 12}]}


async def test_checkout_retry_and_read_your_writes_over_http(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, registry=service_registry()) as store:
        async with serving(store) as api:
            added = await api.post("/catalog", {"product_id": "milk", "name": "Milk", "price": 99})
            assert added.status_code == 201, added.text
            delivered = await api.post("/stock/milk/deliveries", {"quantity": 10})
            assert delivered.status_code == 201, delivered.text
            sold = await api.post("/checkouts", SALE, role=Role.TILL)
            assert sold.status_code == 201, sold.text
            again = await api.post("/checkouts", SALE, role=Role.TILL)
            assert again.content == sold.content
            receipt = sold.json()["receipt"]["token"]
            report = await api.get("/report", params={"wait_for": receipt, "timeout": 20})
            assert report.status_code == 200, report.text
            assert report.json()["freshness"]["waited"] == "reached"
            [row] = report.json()["rows"]
            assert (row["units_sold"], row["stock_left"], row["open_shortfall"]) == (12, -2, 2)
            heads = await api.settled_heads()
            refused = await api.post(
                "/checkouts", {**SALE, "checkout_id": "c-2", "lines": []}, role=Role.TILL
            )
            assert refused.status_code == 422, refused.text
            assert await api.settled_heads() == heads
