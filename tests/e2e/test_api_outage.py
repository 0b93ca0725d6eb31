"""The HTTP side while the database is away (its reads and writes raising
:class:`DatabaseUnavailable`): writes are 503 with ``Retry-After`` on both checkout paths
(never a 500), tokens read before still authenticate, ``/processors`` and ``/metrics``
say ``degraded`` without waiting on the database, requests ask it nothing on the event
loop once the runtime knows it away, and the report watch follows again once it is
back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Api, served
from tillflow.engine.postgres.errors import DatabaseUnavailable
from tillflow.service import access_tokens
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.shop.sale import service as sale_service
from tillflow.shop.sale import tills as sale_tills

CHECKOUT = {
    "checkout_id": "c-1",
    "till_id": "till-1",
    "lines": [{"product_id": "apple", "quantity": 1}],
}


def away(*args: object, **kwargs: object) -> Any:
    raise DatabaseUnavailable("postgresql://till@db/shop", "connection refused")


async def away_async(*args: object, **kwargs: object) -> Any:
    away()


@pytest.fixture(params=[True, False], ids=["fast", "route"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with served(tmp_path / "shop.db", fast_checkouts=request.param) as api:
        added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 1})
        assert added.status_code == 201, added.text
        yield api


def take_away(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read and write of the store fails from now on (the test's monkeypatch undoes
    it)."""
    store = api.store
    for name in ("read_stream", "checkpoint", "heads", "head", "read", "stream_version"):
        monkeypatch.setattr(store, name, away)
    monkeypatch.setattr(store, "append_async", away_async)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_checkout_meeting_the_database_away_is_503_with_retry_after(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_away(shop, monkeypatch)
    answer = await shop.post("/checkouts", CHECKOUT, Role.TILL)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["type"] == "urn:tillflow:problem:unavailable"
    again = await shop.post("/checkouts", CHECKOUT, Role.TILL)  # tokens read before answer
    assert again.status_code == 503, again.text


async def test_processors_and_metrics_say_degraded_without_the_database(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = shop.app.state.services.runtime
    take_away(shop, monkeypatch)
    await eventually(lambda: runtime.health.degraded)  # the processors found out
    answer = await shop.get("/processors")
    assert answer.status_code == 200, answer.text
    store = answer.json()["store"]
    assert store["state"] == "degraded" and store["retries"] >= 1 and store["since"] > 0
    assert "connection refused" in store["last_error"]
    assert "degraded" in {row["state"] for row in answer.json()["processors"]}
    metrics = await shop.get("/metrics")
    assert "tillflow_store_unavailable 1.0" in metrics.text
    assert "tillflow_store_retries_total" in metrics.text
    monkeypatch.undo()
    await eventually(lambda: not runtime.health.degraded)
    answer = await shop.get("/processors")
    assert answer.json()["store"]["state"] == "ok" and answer.json()["store"]["outages"] == 1
    assert "tillflow_store_unavailable 0.0" in (await shop.get("/metrics")).text


async def test_the_report_watch_follows_again_after_an_outage(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = shop.app.state.services.watch
    monkeypatch.setattr(shop.store, "checkpoint", away)
    seen = watch.generation
    await asyncio.sleep(0.3)  # the watch looks (and fails) meanwhile
    monkeypatch.undo()
    sold = await shop.post("/checkouts", CHECKOUT, Role.TILL)
    assert sold.status_code == 201, sold.text
    token = sold.json()["receipt"]["token"]
    read = await shop.get("/report", params={"wait_for": token, "timeout": 5})
    assert read.json()["freshness"]["waited"] == "reached"
    await eventually(lambda: watch.generation > seen)  # it looks again (live stream, metrics)


async def test_a_server_that_never_read_its_tokens_answers_503_not_500(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as a server started while the database was away would be
    monkeypatch.setattr(shop.app.state.services, "tokens", TokenBook(shop.store))
    take_away(shop, monkeypatch)
    answer = await shop.post("/checkouts", CHECKOUT, Role.TILL)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"


async def test_known_away_requests_ask_the_database_nothing_on_the_event_loop(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request authenticates, and a checkout prices its lines, on the event loop; a
    read there waits for the database (on PostgreSQL up to the pool's timeout), so once the
    runtime knows it away, the tokens and the catalog read before answer without asking."""
    asked_on_the_loop: list[str] = []

    def recording(name: str) -> Callable[..., Any]:
        def refused(*args: object, **kwargs: object) -> Any:
            with contextlib.suppress(RuntimeError):  # none running: a worker thread
                asyncio.get_running_loop()
                asked_on_the_loop.append(name)
            away()

        return refused

    sold = await shop.post("/checkouts", {**CHECKOUT, "checkout_id": "c-0"}, Role.TILL)
    assert sold.status_code == 201, sold.text  # the till and the catalog read before
    runtime = shop.app.state.services.runtime
    store = shop.store
    for name in ("read_stream", "checkpoint", "heads", "head", "read", "stream_version"):
        monkeypatch.setattr(store, name, recording(name))
    monkeypatch.setattr(store, "append_async", away_async)
    await eventually(lambda: runtime.health.degraded)
    asked_on_the_loop.clear()
    # past every pause and freshness window: without the runtime's word, each request
    # would ask the database once more
    for module, name in [
        (access_tokens, "AWAY_PAUSE"),
        (sale_service, "AWAY_PAUSE"),
        (sale_service, "CATALOG_FRESH_FOR"),
        (sale_tills, "TILL_FRESH_FOR"),
    ]:
        monkeypatch.setattr(module, name, 0.0)
    assert (await shop.get("/processors")).status_code == 200
    answer = await shop.post("/checkouts", CHECKOUT, Role.TILL)
    assert answer.status_code == 503, answer.text
    assert asked_on_the_loop == []
