"""The store's own refusals over HTTP, with the checkout fast path and without: a write
that keeps losing its race (:class:`ConcurrencyConflict`) is 409 ``concurrency-conflict``
and a store that is closing (:class:`StoreClosed`) is 503 ``unavailable`` — never a 2xx,
never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Api, served
from tillflow.engine import ConcurrencyConflict, StoreClosed, TillflowError
from tillflow.engine.postgres.errors import DatabaseUnavailable
from tillflow.service.access_tokens import Role

CHECKOUT = {
    "checkout_id": "c-2",
    "till_id": "till-1",
    "lines": [{"product_id": "apple", "quantity": 1}],
}
# (path, role, body, the sale service's method the route calls)
WRITES: dict[str, tuple[str, Role, dict[str, Any], str]] = {
    "checkout": ("/checkouts", Role.TILL, CHECKOUT, "checkout_recorded_async"),
    "return": (
        "/checkouts/c-1/returns",
        Role.TILL,
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        "return_items",
    ),
    "add product": (
        "/catalog",
        Role.MANAGER,
        {"product_id": "tea", "name": "Tea", "price": 5},
        "add_product",
    ),
}
ERRORS: dict[str, tuple[Callable[[], TillflowError], int, str]] = {
    "conflict": (lambda: ConcurrencyConflict("checkout-c-2", 3, 4), 409, "concurrency-conflict"),
    "closed": (StoreClosed, 503, "unavailable"),
    "database down": (
        lambda: DatabaseUnavailable("postgresql://db/shop", "connection refused"),
        503,
        "unavailable",
    ),
}


@pytest.fixture(params=[True, False], ids=["fast", "route"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """An app with the checkout fast path, or without; apple in the catalog, checkout c-1."""
    async with served(tmp_path / "shop.db", fast_checkouts=request.param) as api:
        added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 1})
        assert added.status_code == 201, added.text
        sold = await api.post("/checkouts", {**CHECKOUT, "checkout_id": "c-1"}, Role.TILL)
        assert sold.status_code == 201, sold.text
        yield api


@pytest.mark.parametrize("error", sorted(ERRORS))
@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_store_refusal_is_answered_with_its_status(
    shop: Api, monkeypatch: pytest.MonkeyPatch, write: str, error: str
) -> None:
    path, role, body, method = WRITES[write]
    make, status, slug = ERRORS[error]

    def refuse(*args: object) -> Any:
        raise make()

    async def refuse_async(*args: object) -> Any:
        raise make()

    sale = shop.app.state.services.shop.sale
    monkeypatch.setattr(sale, method, refuse_async if method.endswith("_async") else refuse)
    response = await shop.post(path, body, role)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["type"]) == (status, f"urn:tillflow:problem:{slug}")
