"""Dead letters over HTTP: a checkout Inventory parked (its handler failed in an earlier
release) is listed, marks its products' report rows incomplete and shows in /processors and
/metrics; it is refused to viewers and to bad requests with nothing recorded, and retried
by a manager once the fix is served: Inventory and the report then handle it and the rows
are complete again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PRODUCTS
from tests.e2e.servers import Api, served
from tests.parked_checkouts import BUG, park_checkout
from tillflow.engine import SqliteEventStore
from tillflow.engine.parking import dead_letter_stream
from tillflow.service.access_tokens import Role
from tillflow.service.bootstrap import service_registry
from tillflow.shop.inventory.processor import NAME as INVENTORY


@pytest.fixture
async def parked(tmp_path: Path) -> AsyncIterator[Api]:
    """A stocked shop whose checkout ``c-bad`` (2 apples) Inventory parked, served again
    with the fixed Inventory, after a good checkout ``c-ok`` (a pear) settled."""
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
        yield api


async def _listed(api: Api) -> dict[str, dict[str, Any]]:
    return {each["processor"]: each for each in (await api.get("/dead-letters")).json()}


async def _rows(api: Api) -> dict[str, dict[str, Any]]:
    return {row["product_id"]: row for row in (await api.get("/report")).json()["rows"]}


async def _until_none_parked(api: Api, seconds: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + seconds
    while True:
        found: list[Any] = (await api.get("/dead-letters")).json()
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def test_a_parked_checkout_is_listed_and_marks_its_rows_incomplete(parked: Api) -> None:
    listed = await _listed(parked)
    head = listed[INVENTORY]
    assert (head["key"], head["event_type"], head["attempts"]) == (
        "checkout-c-bad",
        "CheckedOut",
        1,
    )
    assert head["error"] == f"RuntimeError: {BUG}"
    assert listed["reporting"]["behind"] == INVENTORY
    shown = (await parked.get(f"/dead-letters/{head['id']}")).json()
    assert BUG in shown["traceback"]
    rows = await _rows(parked)
    assert rows["apple"]["incomplete_since"] == head["parked_at"]
    assert (rows["apple"]["units_sold"], rows["pear"]["units_sold"]) == (0, 1)
    assert rows["pear"]["incomplete_since"] is None
    status = (await parked.get("/processors")).json()["processors"]
    lanes = {(row["processor"], row["lane"]): row for row in status}
    inventory = lanes[(INVENTORY, 0)]
    assert (inventory["parked_keys"], inventory["parked_events"]) == (1, 1)
    assert inventory["oldest_parked_at"] == head["parked_at"]
    assert lanes[("tills", 0)]["parked_keys"] == 0
    metrics = (await parked.get("/metrics")).text
    assert 'tillflow_processor_parked_keys{lane="0",processor="inventory"} 1.0' in metrics
    assert 'tillflow_processor_parked_keys{lane="0",processor="reporting"} 1.0' in metrics
    assert "tillflow_processor_oldest_parked_seconds{" in metrics


async def test_bad_requests_about_a_dead_letter_record_nothing(parked: Api) -> None:
    listed = await _listed(parked)
    path = f"/dead-letters/{listed[INVENTORY]['id']}"
    assert (await parked.post(f"{path}/retry", {}, role=Role.VIEWER)).status_code == 403
    blank = await parked.post(f"{path}/skip", {"reason": "  "})
    assert (blank.status_code, blank.json()["errors"][0]["field"]) == (422, "reason")
    assert (await parked.post(f"{path}/skip", {})).status_code == 422
    unknown = await parked.post(
        "/dead-letters/inventory:00000000-0000-0000-0000-000000000000/retry", {}
    )
    assert (unknown.status_code, unknown.json()["type"]) == (
        404,
        "urn:tillflow:problem:unknown-dead-letter",
    )
    behind = await parked.post(f"/dead-letters/{listed['reporting']['id']}/retry", {})
    assert (behind.status_code, behind.json()["type"]) == (
        409,
        "urn:tillflow:problem:dead-letter-busy",
    )
    assert parked.store.stream_version(dead_letter_stream(INVENTORY)) == 0
    assert parked.store.stream_version(dead_letter_stream("reporting")) == 0


async def test_a_retry_after_the_fix_completes_the_report(parked: Api) -> None:
    path = f"/dead-letters/{(await _listed(parked))[INVENTORY]['id']}"
    asked = await parked.post(f"{path}/retry", {"reason": "fixed in 1.1"})
    assert asked.status_code == 202, asked.text
    assert asked.json()["pending"] == "retry"
    assert await _until_none_parked(parked) == []
    apple = (await _rows(parked))["apple"]
    assert (apple["units_sold"], apple["incomplete_since"]) == (2, None)
    assert "tillflow_processor_parked_keys{" not in (await parked.get("/metrics")).text
    again = await parked.post(f"{path}/retry", {})
    assert (again.status_code, again.json()["type"]) == (
        409,
        "urn:tillflow:problem:dead-letter-resolved",
    )
    (audit,) = parked.store.read_stream(dead_letter_stream(INVENTORY))
    assert (audit.payload()["by"], audit.payload()["reason"]) == ("manager-1", "fixed in 1.1")
