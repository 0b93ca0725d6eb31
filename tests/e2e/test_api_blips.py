"""A checkout meeting an SQLite file locked by another process, with every processor idle:
503 ``unavailable`` with ``Retry-After`` and nothing written; ``/health`` and
``/processors`` say ``degraded`` (the refused request says so: no processor had anything to
commit); once the lock is let go they say ``ok`` again with no write needed, and the retry
answers what a first successful call would have."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.servers import serving
from tests.integration.test_sqlite_locked import eventually, held_lock
from tillflow.engine import SqliteEventStore
from tillflow.service.access_tokens import Role
from tillflow.service.bootstrap import service_registry
from tillflow.shop.sale.events import checkout_stream

CHECKOUT = {
    "checkout_id": "c-1",
    "till_id": "till-1",
    "lines": [{"product_id": "apple", "quantity": 2}],
}


async def test_a_checkout_meeting_a_locked_file_is_503_and_its_retry_answers_as_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry(), busy_timeout=0.2) as store:
        async with serving(store) as api:
            added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 3})
            assert added.status_code == 201, added.text
            runtime = api.app.state.services.runtime
            await runtime.drain(timeout=10)
            with held_lock(path):
                refused = await api.post("/checkouts", CHECKOUT, Role.TILL)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["type"] == "urn:tillflow:problem:unavailable"
                assert store.read_stream(checkout_stream("c-1")) == []  # nothing written
                assert (await api.get("/health")).json() == {"status": "degraded"}
                status = (await api.get("/processors")).json()["store"]
                assert status["state"] == "degraded" and "locked" in status["last_error"]
            await eventually(lambda: not runtime.health.degraded, timeout=2.0)  # by itself
            assert (await api.get("/health")).json() == {"status": "ok"}
            first = await api.post("/checkouts", CHECKOUT, Role.TILL)
            assert first.status_code == 201, first.text
            again = await api.post("/checkouts", CHECKOUT, Role.TILL)
            assert (again.status_code, again.content) == (201, first.content)
            assert len(store.read_stream(checkout_stream("c-1"))) == 1
