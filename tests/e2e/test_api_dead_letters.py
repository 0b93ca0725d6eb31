"""Dead letters over HTTP: a checkout Inventory parked (its handler failed in an earlier
release) is listed, refused to viewers and to bad requests with nothing recorded, and
retried by a manager once the fix is served: Inventory and the report then handle it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.e2e.conftest import PRODUCTS
from tests.e2e.servers import Api, served
from tests.parked_checkouts import BUG, park_checkout
from tillflow.engine import SqliteEventStore
from tillflow.engine.parking import dead_letter_stream
from tillflow.service.access_tokens import Role
from tillflow.service.bootstrap import service_registry
from tillflow.shop.inventory.processor import NAME as INVENTORY


async def _until(api: Api, path: str, done: object, seconds: float = 10.0) -> object:
    deadline = time.monotonic() + seconds
    while True:
        found = (await api.get(path)).json()
        if found == done or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def test_a_parked_checkout_is_listed_refused_badly_and_retried_by_a_manager(
    tmp_path: Path,
) -> None:
    database = tmp_path / "shop.db"
    async with served(database) as api:
        tokens = api.tokens
        for product_id, (name, price) in PRODUCTS.items():
            await api.post("/catalog", {"product_id": product_id, "name": name, "price": price})
            await api.post(f"/stock/{product_id}/deliveries", {"quantity": 10})
        await api.settled_heads()
    with SqliteEventStore(database, registry=service_registry()) as store:
        park_checkout(store, "c-bad", "apple", 2)
    async with served(database, tokens) as api:
        sold = await api.post(
            "/checkouts",
            {
                "checkout_id": "c-ok",
                "till_id": "t",
                "lines": [{"product_id": "pear", "quantity": 1}],
            },
            role=Role.TILL,
        )
        assert sold.status_code == 201, sold.text
        await api.settled_heads()
        listed = (await api.get("/dead-letters")).json()
        by_processor = {each["processor"]: each for each in listed}
        parked = by_processor[INVENTORY]
        assert (parked["key"], parked["event_type"], parked["attempts"]) == (
            "checkout-c-bad",
            "CheckedOut",
            1,
        )
        assert parked["error"] == f"RuntimeError: {BUG}"
        assert by_processor["reporting"]["behind"] == INVENTORY
        shown = (await api.get(f"/dead-letters/{parked['id']}")).json()
        assert BUG in shown["traceback"]

        path = f"/dead-letters/{parked['id']}"
        assert (await api.post(f"{path}/retry", {}, role=Role.VIEWER)).status_code == 403
        blank = await api.post(f"{path}/skip", {"reason": "  "})
        assert (blank.status_code, blank.json()["errors"][0]["field"]) == (422, "reason")
        assert (await api.post(f"{path}/skip", {})).status_code == 422
        unknown = await api.post("/dead-letters/00000000-0000-0000-0000-000000000000/retry")
        assert (unknown.status_code, unknown.json()["type"]) == (
            404,
            "urn:tillflow:problem:unknown-dead-letter",
        )
        behind = await api.post(f"/dead-letters/{by_processor['reporting']['id']}/retry")
        assert behind.status_code == 409
        assert api.store.stream_version(dead_letter_stream(INVENTORY)) == 0

        asked = await api.post(f"{path}/retry", {"reason": "fixed in 1.1"})
        assert (asked.status_code, asked.json()["pending"]) == (202, "retry")
        assert await _until(api, "/dead-letters", []) == []
        report = await api.get("/report")
        apple = next(row for row in report.json()["rows"] if row["product_id"] == "apple")
        assert apple["units_sold"] == 2
        again = await api.post(f"{path}/retry")
        assert (again.status_code, again.json()["type"]) == (
            409,
            "urn:tillflow:problem:dead-letter-resolved",
        )
        (audit,) = api.store.read_stream(dead_letter_stream(INVENTORY))
        assert (audit.payload()["by"], audit.payload()["reason"]) == ("manager-1", "fixed in 1.1")
