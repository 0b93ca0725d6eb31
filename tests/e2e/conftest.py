"""Fixtures for the HTTP tests: a served shop on a fresh SQLite file with a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.servers import Api, served

PRODUCTS = {"apple": ("Apple", 120), "pear": ("Pear", 80), "milk": ("Milk 1 l", 99)}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app over ASGI (processors running), with a till, a manager and a viewer token."""
    async with served(tmp_path / "shop.db") as api:
        yield api


@pytest.fixture
async def shop(api: Api) -> Api:
    """``api`` with apple, pear and milk in the catalog and 10 of each on the shelf."""
    for product_id, (name, price) in PRODUCTS.items():
        added = await api.post("/catalog", {"product_id": product_id, "name": name, "price": price})
        assert added.status_code == 201, added.text
        delivered = await api.post(f"/stock/{product_id}/deliveries", {"quantity": 10})
        assert delivered.status_code == 201, delivered.text
    return api
