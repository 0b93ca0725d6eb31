"""A stall on the dashboard, in a real headless Chromium (the set-up of
``test_dashboard.py``): ``tillflow serve --no-processors`` on an SQLite file with
``TILLFLOW_STALL_AFTER=1``, Inventory in a ``tillflow worker`` of its own and the other
processors in another. The Inventory worker is frozen (SIGSTOP) and a checkout rung up:
the pipeline marks Inventory stalled, and the report stalled at its barrier, waiting for
Inventory, "which is stalled", while the caught-up cash-up stays "in a worker";
thawed (SIGCONT), both are back to "in a worker" and the alarm goes. A screenshot is kept
as ``artifacts/dashboard-stalled.png``."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.servers import DEADLINE, serve_env, wait_until_healthy
from tests.e2e.test_dashboard import ARTIFACTS, Shop, browser, page, start, stop
from tillflow.engine import SqliteEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry

__all__ = ["browser", "page"]  # the fixtures, shared with test_dashboard.py

STALL_AFTER = 1.0
OTHERS = ["--run", "reporting", "--run", "tills"]
ALARM = re.compile(r"(^|\s)alarm(\s|$)")


@dataclass
class HeldShop:
    """A served shop whose Inventory runs in a worker process the test can freeze."""

    shop: Shop
    inventory: subprocess.Popen[str]


@pytest.fixture
def held_shop(tmp_path: Path) -> Iterator[HeldShop]:
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=service_registry()) as store:
        book = TokenBook(store)
        tokens = {role.value: book.create(role.value, role)[0] for role in Role}
    url, env = serve_env(database, TILLFLOW_STALL_AFTER=str(STALL_AFTER))
    processes: list[subprocess.Popen[str]] = []
    try:
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            log = tmp_path / "serve.log"
            server = start(["serve", "--no-processors"], env, log)
            processes.append(server)
            wait_until_healthy(url, server, log)
            inventory = start(["worker", "--run", "inventory"], env, tmp_path / "inventory.log")
            processes.append(inventory)
            processes.append(start(["worker", *OTHERS], env, tmp_path / "others.log"))
            yield HeldShop(Shop(url, client, tokens, env), inventory)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a frozen worker is killed like any
            stop(process)


def test_a_frozen_worker_shows_as_stalled_and_its_dependant_says_on_what(
    held_shop: HeldShop, page: Page
) -> None:
    shop = held_shop.shop
    shop.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 45}, "manager")
    shop.post("/stock/apple/deliveries", {"quantity": 10}, "manager")
    shop.settled_processors()
    page.goto(f"{shop.url}/dashboard#token={shop.tokens['viewer']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    inventory = page.locator('#pipeline [data-processor="inventory"]')
    reporting = page.locator('#pipeline [data-processor="reporting"]')
    note = page.locator("#pipeline-note")
    expect(inventory).to_have_attribute("data-state", "elsewhere")  # run by a worker
    expect(note).not_to_have_class(ALARM)

    held_shop.inventory.send_signal(signal.SIGSTOP)
    shop.checkout("till-1", {"apple": 2})
    expect(inventory).to_have_attribute("data-state", "stalled")
    expect(inventory.locator(".state-pill")).to_have_text(re.compile(r"^stalled · \d"))
    expect(reporting).to_have_attribute("data-state", "stalled")
    barrier = reporting.locator('[data-field="barrier"]')
    expect(barrier).to_have_text("held at the barrier: waiting for inventory, which is stalled")
    expect(barrier).to_have_class(ALARM)
    expect(note).to_have_class(ALARM)
    expect(note).to_contain_text("2 stalled: no progress for 1.0 s")
    cash_up = page.locator('#pipeline [data-processor="tills"]')
    expect(cash_up).to_have_attribute("data-state", "elsewhere")  # caught up: not stalled
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-stalled.png", full_page=True)

    held_shop.inventory.send_signal(signal.SIGCONT)
    for item in (inventory, reporting):
        expect(item).to_have_attribute("data-state", "elsewhere")
    expect(note).not_to_have_class(ALARM)
    rows = shop.settled_processors()["processors"]
    assert all(row["state"] != "stalled" for row in rows), rows
