"""Receipts over HTTP: ``GET /checkouts/{id}/receipt`` as 48-column text (the default) and
as an HTML page (``Accept: text/html``), a return's receipt naming the original, unknown ids
answering 404 problems naming them, and a checkout not yet numbered answering 503 with
Retry-After once the wait is over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import PRODUCTS
from tests.e2e.servers import Api
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.service.settings import Settings
from tillflow.shop.receipts.numbering import receipt_number
from tillflow.shop.receipts.text import WIDTH

SETTINGS = Settings(shop_name="Corner <Shop> & Co", timezone="Europe/Paris")
BASKET = [{"product_id": "apple", "quantity": 2}, {"product_id": "milk", "quantity": 1}]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@asynccontextmanager
async def receipts_api(database: Path, run_processors: bool = True) -> AsyncIterator[Api]:
    """The app on a fresh SQLite file, set up as ``SETTINGS`` say, with the products."""
    with SqliteEventStore(database, registry=service_registry(), durability="off") as store:
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
        app = create_app(SETTINGS, store=store, run_processors=run_processors)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tillflow.test") as client,
        ):
            api = Api(client, store, tokens, app)
            for product_id, (name, price) in PRODUCTS.items():
                body = {"product_id": product_id, "name": name, "price": price}
                added = await api.post("/catalog", body)
                assert added.status_code == 201, added.text
            yield api


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Api]:
    async with receipts_api(tmp_path / "shop.db") as api:
        yield api


async def _get(
    api: Api, path: str, accept: str | None = None, role: Role = Role.VIEWER
) -> httpx.Response:
    headers = api.auth(role) | ({"Accept": accept} if accept is not None else {})
    return await api.client.get(path, headers=headers)


async def _sell(api: Api, checkout_id: str, till: str = "till-1", **extra: object) -> None:
    body = {"checkout_id": checkout_id, "till_id": till, "lines": BASKET, **extra}
    sold = await api.post("/checkouts", body, role=Role.TILL)
    assert sold.status_code == 201, sold.text


async def test_a_receipt_is_48_column_text_numbered_per_till(shop: Api) -> None:
    for checkout_id, till in (("c-1", "till-1"), ("c-2", "till-2"), ("c-3", "till-1")):
        await _sell(shop, checkout_id, till, at="2026-12-06T09:30:00Z")
    response = await _get(shop, "/checkouts/c-3/receipt", role=Role.TILL)  # waits for it
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    text = response.text
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert text.splitlines()[:4] == [
        "               Corner <Shop> & Co",
        "Till till-1                            Receipt 2",
        "2026-12-06 10:30:00 CET",
        "Checkout c-3",
    ]
    assert "  2 x 1.20" in text and "TOTAL" in text and "3.39" in text
    second = await _get(shop, "/checkouts/c-2/receipt", "*/*")
    assert "Till till-2                            Receipt 1" in second.text
    again = await _get(shop, "/checkouts/c-3/receipt", role=Role.MANAGER)
    assert again.text == text  # the same receipt, printed again


async def test_a_card_and_cash_split_shows_the_masked_card_and_the_change(shop: Api) -> None:
    tenders = [{"type": "card", "amount": 200, "card": "tok-9876"}, {"type": "cash", "amount": 500}]
    await _sell(shop, "c-1", tenders=tenders)
    text = (await shop.get("/checkouts/c-1/receipt")).text
    assert "Card ****9876" in text and "tok-9876" not in text
    assert "  auth " in text
    assert f"{'Cash':<{WIDTH - 4}}5.00" in text
    assert f"{'CHANGE':<{WIDTH - 4}}3.61" in text  # 500 handed for the 139 left


@pytest.mark.parametrize("accept", [BROWSER, "text/html", "text/plain;q=0.5, text/html"])
async def test_a_browser_gets_an_html_page_with_every_text_escaped(shop: Api, accept: str) -> None:
    await _sell(shop, "c-1")
    response = await _get(shop, "/checkouts/c-1/receipt", accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>Corner &lt;Shop&gt; &amp; Co</h1>" in page
    assert "Receipt 1" in page and "Milk 1 l" in page


@pytest.mark.parametrize("accept", ["*/*", "text/html;q=0.2, text/plain", "application/json"])
async def test_anything_else_gets_text(shop: Api, accept: str) -> None:
    await _sell(shop, "c-1")
    response = await _get(shop, "/checkouts/c-1/receipt", accept)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_a_returns_receipt_names_the_original_and_its_number(shop: Api) -> None:
    await _sell(shop, "c-1", till="till-7")
    back = await shop.post(
        "/checkouts/c-1/returns",
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        role=Role.TILL,
    )
    assert back.status_code == 201, back.text
    response = await shop.get("/checkouts/c-1/returns/r-1/receipt")
    assert response.status_code == 200, response.text
    text = response.text
    assert "REFUND" in text and "Return r-1" in text and "Checkout c-1" in text
    assert "For receipt 1 of " in text and "Till till-7" in text
    assert f"{'Cash from the drawer':<{WIDTH - 4}}1.20" in text
    page = await _get(shop, "/checkouts/c-1/returns/r-1/receipt", "text/html")
    assert "<h2>REFUND</h2>" in page.text


async def test_unknown_ids_answer_404_problems_naming_them(shop: Api) -> None:
    await _sell(shop, "c-1")
    await _sell(shop, "c-2")
    await shop.post(
        "/checkouts/c-1/returns",
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        role=Role.TILL,
    )
    cases = {
        "/checkouts/nope/receipt": ("unknown-checkout", "checkout_id", "'nope'"),
        "/checkouts/nope/returns/r-1/receipt": ("unknown-checkout", "checkout_id", "'nope'"),
        "/checkouts/c-1/returns/r-9/receipt": ("unknown-return", "return_id", "'r-9'"),
        "/checkouts/c-2/returns/r-1/receipt": ("unknown-return", "return_id", "'r-1'"),
    }
    for path, (kind, field, named) in cases.items():
        response = await shop.get(path)
        assert response.status_code == 404, (path, response.text)
        problem = response.json()
        assert problem["type"] == f"urn:tillflow:problem:{kind}", path
        assert problem["errors"][0]["field"] == field and problem["errors"][0]["location"] == "path"
        assert named in problem["detail"], path
    refused = {
        "/checkouts/c-1/receipt?timeout=61": ("timeout", "query"),
        "/checkouts/c-1/receipt?timeout=-1": ("timeout", "query"),
        "/checkouts/c-1/receipt?copies=2": ("copies", "query"),
        "/checkouts/bad%20id/receipt": ("checkout_id", "path"),
        "/checkouts/c-1/returns/r%3C1/receipt": ("return_id", "path"),
    }
    for path, (field, location) in refused.items():
        bad = await _get(shop, path)
        assert bad.status_code == 422, (path, bad.text)
        error = bad.json()["errors"][0]
        assert (error["field"], error["location"]) == (field, location), path
    anonymous = await shop.client.get("/checkouts/c-1/receipt")
    assert anonymous.status_code == 401


async def test_a_checkout_not_numbered_yet_answers_503_with_retry_after(tmp_path: Path) -> None:
    async with receipts_api(tmp_path / "shop.db", run_processors=False) as api:
        await _sell(api, "c-1")
        response = await api.get("/checkouts/c-1/receipt?timeout=0.2")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        problem = response.json()
        assert problem["type"] == "urn:tillflow:problem:receipt-not-numbered"
        assert "'c-1'" in problem["detail"]
        assert receipt_number(api.store, "c-1") is None
