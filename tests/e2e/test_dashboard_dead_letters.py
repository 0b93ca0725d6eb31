"""The dashboard shows parked keys in red: a real ``tillflow serve`` on an SQLite file where
Inventory parked a checkout (its handler failed in an earlier release), seen in headless
Chromium, and the report row of the product it sold marked incomplete; a manager's retry
through the API clears both on the page. A screenshot is kept as
``artifacts/dashboard-parked.png``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.servers import DEADLINE, serve_env, serve_process
from tests.e2e.test_dashboard import ARTIFACTS, CHROMIUM, LAPTOP, launch
from tests.parked_checkouts import park_checkout
from tillflow.engine import SqliteEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.sale.commands import AddProduct

PARKED = re.compile(r"(^|\s)parked(\s|$)")
INCOMPLETE = re.compile(r"(^|\s)incomplete(\s|$)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[Role, str]]]:
    """``tillflow serve`` on a file where Inventory parked checkout ``c-bad``; its URL and
    a token per role."""
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=service_registry()) as store:
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 45))
        shop.inventory.receive(ReceiveStock("apple", 10))
        park_checkout(store, "c-bad", "apple", 2)
    url, env = serve_env(database)
    with serve_process(url, env, tmp_path / "serve.log"):
        yield url, tokens


@pytest.fixture
def page() -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser.new_context(viewport=LAPTOP).new_page()
        finally:
            browser.close()


def test_parked_keys_show_in_red_until_a_retry_clears_them(
    served: tuple[str, dict[Role, str]], page: Page
) -> None:
    url, tokens = served
    page.goto(f"{url}/dashboard#token={tokens[Role.VIEWER]}")
    inventory = page.locator('#pipeline li[data-processor="inventory"]')
    parked = inventory.locator('[data-field="parked"]')
    expect(parked).to_have_text(re.compile(r"^1 key parked · 1 event held · oldest "))
    expect(parked).to_have_css("color", "rgb(198, 42, 42)")
    expect(inventory).to_have_class(PARKED)
    expect(page.locator('#pipeline li[data-processor="reporting"]')).to_have_class(PARKED)
    expect(page.locator('#pipeline li[data-processor="tills"]')).not_to_have_class(PARKED)
    apple = page.locator('#report tr[data-product="apple"]')
    expect(apple).to_have_class(INCOMPLETE)
    expect(apple.locator(".product-id")).to_have_text(re.compile(r"^apple · incomplete since "))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-parked.png")

    manager = {"Authorization": f"Bearer {tokens[Role.MANAGER]}"}
    with httpx.Client(base_url=url, headers=manager, timeout=DEADLINE) as client:
        (letter,) = [each for each in client.get("/dead-letters").json() if each["behind"] is None]
        asked = client.post(f"/dead-letters/{letter['id']}/retry", json={"reason": "fixed"})
        assert asked.status_code == 202, asked.text
    expect(parked).to_be_hidden()
    expect(inventory).not_to_have_class(PARKED)
    expect(page.locator("#pipeline li.parked")).to_have_count(0)
    expect(apple).not_to_have_class(INCOMPLETE)
    expect(apple.locator('[data-field="units_sold"]')).to_have_text("2")
