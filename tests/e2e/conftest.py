"""Fixtures for the HTTP tests: a served shop on a fresh SQLite file with a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry

PRODUCTS = {"apple": ("Apple", 120), "pear": ("Pear", 80), "milk": ("Milk 1 l", 99)}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app over ASGI (processors running), with a till, a manager and a viewer token."""
    with SqliteEventStore(
        tmp_path / "shop.db", registry=service_registry(), durability="off"
    ) as store:
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
        app = create_app(store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tillflow.test") as client,
        ):
            yield Api(client, store, tokens, app)


@pytest.fixture
async def shop(api: Api) -> Api:
    """``api`` with apple, pear and milk in the catalog and 10 of each on the shelf."""
    for product_id, (name, price) in PRODUCTS.items():
        added = await api.post("/catalog", {"product_id": product_id, "name": name, "price": price})
        assert added.status_code == 201, added.text
        delivered = await api.post(f"/stock/{product_id}/deliveries", {"quantity": 10})
        assert delivered.status_code == 201, delivered.text
    return api
