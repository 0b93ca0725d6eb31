"""An event in the log this release cannot read (written by a newer release) answers a
problem naming the event's type and versions, not a bare internal error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.conftest import PRODUCTS
from tests.e2e.servers import served
from tillflow.service.access_tokens import Role


async def test_a_checkout_written_by_a_newer_release_is_an_unreadable_event(
    tmp_path: Path,
) -> None:
    database = tmp_path / "shop.db"
    async with served(database) as api:
        tokens = api.tokens
        name, price = PRODUCTS["apple"]
        await api.post("/catalog", {"product_id": "apple", "name": name, "price": price})
        sold = await api.post(
            "/checkouts",
            {
                "checkout_id": "c-1",
                "till_id": "t",
                "lines": [{"product_id": "apple", "quantity": 1}],
            },
            role=Role.TILL,
        )
        assert sold.status_code == 201, sold.text
        assert (await api.get("/checkouts/c-1")).status_code == 200
        await api.settled_heads()
    with sqlite3.connect(database) as conn:  # as a release with CheckedOut v99 would write it
        conn.execute("UPDATE events SET schema_version = 99 WHERE type = 'CheckedOut'")
    async with served(database, tokens) as api:
        answer = await api.get("/checkouts/c-1")
    assert answer.status_code == 500
    problem = answer.json()
    assert problem["type"] == "urn:tillflow:problem:unreadable-event"
    assert "CheckedOut recorded at schema version 99" in problem["detail"], problem
