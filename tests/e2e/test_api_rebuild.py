"""The report over HTTP across a blue/green rebuild: the version it is as of, and
read-your-writes still waiting on the version that is live."""

from __future__ import annotations

import asyncio

from tests.e2e.servers import Api
from tillflow.engine import SqliteEventStore
from tillflow.engine.rebuild import Rebuild
from tillflow.service.access_tokens import Role
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.reporting.projection import reporting_processor


async def _sell(shop: Api, checkout_id: str) -> str:
    sold = await shop.post(
        "/checkouts",
        {
            "checkout_id": checkout_id,
            "till_id": "t",
            "lines": [{"product_id": "apple", "quantity": 1}],
        },
        role=Role.TILL,
    )
    assert sold.status_code == 201, sold.text
    token: str = sold.json()["receipt"]["token"]
    return token


async def test_after_a_rebuild_the_report_is_as_of_v2_and_waits_on_it(shop: Api) -> None:
    token = await _sell(shop, "c-1")
    before = (await shop.get("/report", params={"wait_for": token, "timeout": 10})).json()
    assert before["version"] == 1
    assert isinstance(shop.store, SqliteEventStore)
    with SqliteEventStore(shop.store.path, registry=REGISTRY) as own:
        outcome = await asyncio.to_thread(Rebuild(own, reporting_processor(), "test").run)
    assert outcome.switched and outcome.version == 2
    token = await _sell(shop, "c-2")
    after = await shop.get("/report", params={"wait_for": token, "timeout": 10})
    body = after.json()
    assert body["version"] == 2
    assert body["freshness"]["waited"] == "reached", "the wait follows the live version"
    assert body["totals"]["checkouts"] == 2
    one = (await shop.get("/report/products/apple")).json()
    assert one["version"] == 2 and one["row"]["units_sold"] == 2
