"""The live dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
playwright) against a real ``tillflow serve`` process on a fresh SQLite file: tokens made
with the CLI, products, stock and checkouts through the API, and the page seen to change —
sold figures rise, an oversell is highlighted, the pipeline shows the processors caught up
and says one process runs every lane. On PostgreSQL (``tillflow serve --no-processors`` and
two ``tillflow worker`` processes), the pipeline shows the workers and the lanes each
holds, and follows a hand-over (SIGTERM) and orphaned lanes (SIGKILL).

Every wait is on a page condition with a deadline. Each check compares the figure on the
page before and after, so a page that stops updating fails; a negative control proves it
(the same check on a page whose live stream is frozen must fail). A screenshot of the
dashboard is kept as ``artifacts/dashboard.png`` (and of its takings by tender and sales
per hour today as ``artifacts/dashboard-sales.png``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.e2e.servers import (
    DEADLINE,
    TILLFLOW,
    free_socket,
    serve_env,
    serve_process,
    wait_until_healthy,
)
from tillflow.engine.postgres import PostgresEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import shop_processors

CHROMIUM = Path(os.environ.get("TILLFLOW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
SHORT = re.compile(r"(^|\s)short(\s|$)")
LOW = re.compile(r"(^|\s)low(\s|$)")
PAGE_DEADLINE_MS = 10_000
expect.set_options(timeout=PAGE_DEADLINE_MS)  # every page wait, not playwright's 5 s

CATALOG = [
    # product id, name, price (cents), delivered
    ("apple", "Apple Elstar", 45, 120),
    ("bread", "Sourdough loaf", 420, 40),
    ("milk", "Milk 1 l", 129, 60),
    ("eggs", "Free-range eggs (6)", 289, 40),
    ("coffee", "Coffee beans 500 g", 899, 18),
    ("basil", "Basil pot", 249, 2),
    ("cheese", "Gouda 200 g", 375, 30),
    ("tomato", "Vine tomatoes", 199, 60),
    ("yogurt", "Greek yogurt", 165, 36),
    ("honey", "Café honey — 250 g", 675, 12),
]


@dataclass
class Shop:
    """A served shop: its URL, an HTTP client, a token per role and the CLI's environment."""

    url: str
    client: httpx.Client
    tokens: dict[str, str]
    env: dict[str, str]
    checkouts: int = 0

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, body: dict[str, Any], role: str) -> dict[str, Any]:
        answer = self.client.post(path, json=body, headers=self.headers(role))
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def checkout(self, till: str, lines: dict[str, int]) -> str:
        """Rings up a checkout; its receipt token."""
        self.checkouts += 1
        body = {
            "checkout_id": f"c-{self.checkouts}",
            "till_id": till,
            "lines": [{"product_id": pid, "quantity": qty} for pid, qty in lines.items()],
        }
        receipt: str = self.post("/checkouts", body, "till")["receipt"]["token"]
        return receipt

    def report(self, receipt: str | None = None) -> dict[str, Any]:
        params: dict[str, str | float] = (
            {"wait_for": receipt, "timeout": DEADLINE} if receipt else {}
        )
        answer = self.client.get("/report", params=params, headers=self.headers("viewer"))
        assert answer.status_code == 200, answer.text
        report: dict[str, Any] = answer.json()
        if receipt:
            assert report["freshness"]["waited"] == "reached", report["freshness"]
        return report

    def row(self, report: dict[str, Any], product_id: str) -> dict[str, Any]:
        row: dict[str, Any] = next(r for r in report["rows"] if r["product_id"] == product_id)
        return row

    def settled_processors(self) -> dict[str, Any]:
        """``GET /processors`` once every processor has caught up with the head."""
        deadline = time.monotonic() + DEADLINE
        while True:
            status: dict[str, Any] = self.client.get(
                "/processors", headers=self.headers("viewer")
            ).json()
            if all(row["lag_events"] == 0 for row in status["processors"]):
                return status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)

    def tillflow(self, *args: str) -> str:
        done = subprocess.run(
            [TILLFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """``tillflow serve`` on a free port and a fresh SQLite file, with tokens made by the CLI
    and the catalog stocked through the API."""
    directory = tmp_path_factory.mktemp("dashboard")
    url, env = serve_env(directory / "shop.db")
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        served = Shop(url, client, {}, env)
        for role in ("manager", "till", "viewer"):
            served.tokens[role] = served.tillflow("token", "create", "--role", role, "--name", role)
        with serve_process(url, env, directory / "serve.log"):
            for product_id, name, price, delivered in CATALOG:
                body = {"product_id": product_id, "name": name, "price": price}
                served.post("/catalog", body, "manager")
                served.post(f"/stock/{product_id}/deliveries", {"quantity": delivered}, "manager")
            yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=DEADLINE * 1000
    )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab at laptop size; fails the test on any script error in the page (refused
    requests are logged by the browser as errors too: the tests check those themselves)."""
    context = browser.new_context(viewport=LAPTOP)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert not errors, errors


def cell(page: Page, product_id: str, field: str) -> Locator:
    return page.locator(f'#report tr[data-product="{product_id}"] td[data-field="{field}"]')


def total(page: Page, name: str) -> Locator:
    return page.locator(f'[data-total="{name}"]')


def changes(
    locator: Locator, before: str, after: str, timeout_ms: float = PAGE_DEADLINE_MS
) -> None:
    """The text of ``locator`` was ``before`` and becomes ``after`` within the deadline: a
    page that stopped updating fails here, since ``before`` differs from ``after``."""
    assert before != after, (before, after)
    expect(locator).to_have_text(after, timeout=timeout_ms)


def money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def open_dashboard(page: Page, shop: Shop) -> None:
    page.goto(f"{shop.url}/dashboard#token={shop.tokens['viewer']}")
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=PAGE_DEADLINE_MS
    )
    expect(page.locator("#report tbody tr")).to_have_count(len(CATALOG), timeout=PAGE_DEADLINE_MS)


def ring_up_in_bursts(shop: Shop, page: Page) -> None:
    """Bursts of checkouts from three tills, each burst seen on the page before the next
    (so the chart gets samples of changing throughput)."""
    tills = ("till-1", "till-2", "till-3")
    head = page.locator('#pipeline [data-processor="reporting"] [data-field="head"]')
    for burst in range(8):
        before = cell(page, "bread", "units_sold").inner_text()
        head_before = head.inner_text()
        for n in range(2 + burst * 3 % 5):
            lines = {"bread": 1, "tomato": 1 + n % 3, "apple": 1 + burst % 3}
            if n % 2:
                lines |= {"coffee": 1, "eggs": 1}
            if n % 3 == 0:
                lines |= {"cheese": 1, "yogurt": 2}
            receipt = shop.checkout(tills[n % 3], lines)
        row = shop.row(shop.report(receipt), "bread")
        changes(cell(page, "bread", "units_sold"), before, str(row["units_sold"]))
        expect(head).not_to_have_text(head_before, timeout=PAGE_DEADLINE_MS)


def pipeline_caught_up(shop: Shop, page: Page) -> None:
    """Every processor shown caught up with the head the API reports once it settled, and
    the freshness line as of that head."""
    status = shop.settled_processors()
    head = f"{status['heads']['0']:,}"
    for processor in ("inventory", "reporting"):
        item = page.locator(f'#pipeline [data-processor="{processor}"]')
        expect(item.locator('[data-field="head"]')).to_have_text(head, timeout=PAGE_DEADLINE_MS)
        expect(item.locator('[data-field="checkpoint"]')).to_have_text(head)
        expect(item.locator('[data-field="lag_events"]')).to_have_text("0")
        expect(item).to_have_attribute("data-state", "idle")
        expect(item.locator(".state-pill")).to_have_text("caught up")
    expect(
        page.locator('#pipeline [data-processor="reporting"] [data-field="barrier"]')
    ).to_contain_text("inventory")
    expect(page.locator("#workers")).to_have_attribute("data-leased", "false")
    expect(page.locator("#workers-note")).to_have_text(
        "one process runs every lane (this store has no leases)"
    )
    expect(page.locator("#worker-list li")).to_have_count(0)
    expect(page.locator('#pipeline [data-field="owner"]').first).to_be_hidden()
    expect(page.locator("#freshness")).to_have_text(
        f"Report as of #{head} · up to date with the log", timeout=PAGE_DEADLINE_MS
    )


def test_the_dashboard_follows_checkouts_oversells_and_the_pipeline_live(
    shop: Shop, page: Page
) -> None:
    open_dashboard(page, shop)
    # the token left the URL for this tab's session storage
    assert page.evaluate("window.location.hash") == ""
    assert page.evaluate("sessionStorage.getItem('tillflow.token')") == shop.tokens["viewer"]
    assert page.url == f"{shop.url}/dashboard/"

    sold = cell(page, "apple", "units_sold")
    before = sold.inner_text()
    checkouts_before = total(page, "checkouts").inner_text()
    receipt = shop.checkout("till-1", {"apple": 6, "milk": 2})
    expected = shop.row(shop.report(receipt), "apple")["units_sold"]
    changes(sold, before, str(expected))
    changes(total(page, "checkouts"), checkouts_before, str(shop.checkouts))

    ring_up_in_bursts(shop, page)

    # an oversell: the sale stands, the row shows the shortfall
    basil = page.locator('#report tr[data-product="basil"]')
    expect(basil).not_to_have_class(SHORT)
    short_before = cell(page, "basil", "open_shortfall").inner_text()
    stock_before = cell(page, "basil", "stock_left").inner_text()
    receipt = shop.checkout("till-2", {"basil": 5, "honey": 1})
    row = shop.row(shop.report(receipt), "basil")
    assert row["open_shortfall"] == 3 and row["stock_left"] == -3, row
    changes(cell(page, "basil", "open_shortfall"), short_before, "3")
    changes(cell(page, "basil", "stock_left"), stock_before, "−3")
    expect(basil).to_have_class(SHORT)
    expect(total(page, "short_products")).to_have_text("1")

    # figures, money and as-of as the API says
    report = shop.report(receipt)
    apple = shop.row(report, "apple")
    expect(cell(page, "apple", "units_sold")).to_have_text(f"{apple['units_sold']:,}")
    expect(cell(page, "apple", "revenue")).to_have_text(money(apple["revenue"]))
    expect(cell(page, "apple", "as_of")).to_have_text(
        f"v{apple['as_of']['version']} · #{apple['as_of']['position']:,}"
    )
    expect(total(page, "revenue")).to_have_text(money(report["totals"]["revenue"]))
    expect(total(page, "tax")).to_have_text(money(report["totals"]["tax"]))
    expect(total(page, "tax_by_rate")).to_contain_text("standard 20 %")

    pipeline_caught_up(shop, page)
    # the last events change no row (a token made by the CLI, in another process): the
    # freshness line still follows the report to the head
    shop.tillflow("token", "create", "--role", "viewer", "--name", "kiosk")
    pipeline_caught_up(shop, page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard.png")


def test_the_dashboard_highlights_low_stock_live(shop: Shop, page: Page) -> None:
    """A reorder point set at the stock: not low; one sale below it: the row is marked low
    and the Low stock card counts and names it; a delivery back above: neither."""
    open_dashboard(page, shop)
    honey = page.locator('#report tr[data-product="honey"]')
    stock = shop.row(shop.report(), "honey")["stock_left"]
    answer = shop.client.post(
        "/stock/honey/reorder-point",
        json={"reorder_point": stock},
        headers=shop.headers("manager"),
    )
    assert answer.status_code == 200, answer.text
    shop.report(answer.json()["receipt"]["token"])
    expect(cell(page, "honey", "stock_left")).to_have_attribute("title", f"reorder point {stock:,}")
    expect(honey).not_to_have_class(LOW)
    low_before = total(page, "low_products").inner_text()

    row = shop.row(shop.report(shop.checkout("till-1", {"honey": 1})), "honey")
    assert row["low"] and row["low_since"]["version"] == row["as_of"]["version"], row
    expect(honey).to_have_class(LOW)
    changes(total(page, "low_products"), low_before, str(int(low_before) + 1))
    expect(total(page, "low_names")).to_have_attribute("title", re.compile("Café honey"))
    expect(page.locator("#kpi-low")).to_have_class(re.compile(r"(^|\s)warn(\s|$)"))
    expect(cell(page, "honey", "stock_left")).to_have_attribute(
        "title", re.compile(f"^below its reorder point {stock:,} since ")
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-low-stock.png")

    shop.report(
        shop.post("/stock/honey/deliveries", {"quantity": 5}, "manager")["receipt"]["token"]
    )
    expect(honey).not_to_have_class(LOW)
    changes(total(page, "low_products"), str(int(low_before) + 1), low_before)


def test_the_dashboard_shows_takings_by_tender_and_sales_per_hour_today(
    shop: Shop, page: Page
) -> None:
    """A card sale and a split one: the Takings today card and the hourly chart's legend
    follow to what ``GET /sales/hourly`` says, the hour now has its row and its bar (drawn
    darker: the hour the shop's clock is in)."""
    open_dashboard(page, shop)
    takings = page.locator("#kpi-takings")
    expect(takings.locator('[data-sales="card"]')).not_to_have_text("–")
    card_before = takings.locator('[data-sales="card"]').inner_text()
    cash_before = takings.locator('[data-sales="cash"]').inner_text()
    shop.checkouts += 1
    card = {"type": "card", "amount": 899, "card": "tok-dashboard"}
    body = {
        "checkout_id": f"c-{shop.checkouts}",
        "till_id": "till-1",
        "lines": [{"product_id": "coffee", "quantity": 1}],
        "tenders": [card],
    }
    shop.post("/checkouts", body, "till")
    shop.checkouts += 1
    split = [{"type": "card", "amount": 500, "card": "tok-split"}, {"type": "cash", "amount": 1000}]
    body = {
        "checkout_id": f"c-{shop.checkouts}",
        "till_id": "till-2",
        "lines": [{"product_id": "bread", "quantity": 2}],  # 8.40: 5.00 card, 3.40 cash
        "tenders": split,
    }
    receipt = shop.post("/checkouts", body, "till")["receipt"]["token"]
    shop.report(receipt)
    answer = shop.client.get("/sales/hourly", headers=shop.headers("viewer"))
    assert answer.status_code == 200, answer.text
    sales = answer.json()
    day = sales["day"]
    assert day["cash"] + day["card"] == day["revenue"], day
    changes(takings.locator('[data-sales="card"]'), card_before, money(day["card"]))
    changes(takings.locator('[data-sales="cash"]'), cash_before, money(day["cash"]))
    expect(page.locator('.hours [data-sales="revenue"]')).to_have_text(money(day["revenue"]))
    expect(page.locator('.hours [data-sales="checkouts"]')).to_have_text(f"{day['checkouts']:,}")
    hours = page.locator("#hours-table tbody tr")
    expect(hours).to_have_count(len(sales["hours"]))
    now = [hour for hour in sales["hours"] if hour["checkouts"]][-1]  # the hour of these sales
    row = page.locator(f'#hours-table tr[data-hour="{now["hour"]}"]')
    expect(row.locator('[data-field="revenue"]')).to_have_text(money(now["revenue"]))
    expect(row.locator('[data-field="card"]')).to_have_text(money(now["card"]))
    expect(page.locator("#hours-note")).to_contain_text(f"{sales['date']} · {sales['time_zone']}")
    darker = """() => {
        const canvas = document.querySelector('#hours');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let found = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i] === 0x1e && data[i + 1] === 0x3a && data[i + 2] === 0x8a) found += 1;
        }
        return found;
    }"""
    deadline = time.monotonic() + DEADLINE  # polled from here: the page's CSP forbids eval
    while page.evaluate(darker) <= 20:
        assert time.monotonic() < deadline, "the hour now has no darker bar"
        time.sleep(0.05)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".hours").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "dashboard-sales.png", full_page=True)


def test_a_refused_or_revoked_token_is_said_plainly(shop: Shop, page: Page) -> None:
    page.goto(f"{shop.url}/dashboard#token=not-a-token")
    expect(page.locator("#connection")).to_have_attribute("data-state", "refused")
    expect(page.locator("#signin-error")).to_contain_text("unknown token")
    assert page.evaluate("sessionStorage.getItem('tillflow.token')") is None

    secret = shop.tillflow("token", "create", "--role", "viewer", "--name", "leaver")
    shop.tillflow("token", "revoke", "--name", "leaver")
    page.locator("#token").fill(secret)
    page.locator("#signin-form button").click()
    expect(page.locator("#signin-error")).to_contain_text("'leaver' was revoked")

    page.locator("#token").fill(shop.tokens["till"])
    page.locator("#signin-form button").click()
    expect(page.locator("#signin-error")).to_contain_text("may not follow the report")

    page.locator("#token").fill(shop.tokens["viewer"])
    page.locator("#signin-form button").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#signin")).to_be_hidden()


def test_the_checks_fail_on_a_page_that_stopped_updating(shop: Shop, page: Page) -> None:
    """Negative control: the live stream is replaced by a frozen copy of the report (the
    page reconnects and gets the same old figures again): :func:`changes` must fail."""
    frozen = shop.report()
    body = f"event: report\ndata: {json.dumps({'full': True, **frozen})}\n\n"
    page.route(
        "**/events/report*",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=body
        ),
    )
    page.goto(f"{shop.url}/dashboard#token={shop.tokens['viewer']}")
    sold = cell(page, "milk", "units_sold")
    before = f"{shop.row(frozen, 'milk')['units_sold']:,}"
    expect(sold).to_have_text(before, timeout=PAGE_DEADLINE_MS)
    receipt = shop.checkout("till-3", {"milk": 4})
    after = shop.row(shop.report(receipt), "milk")["units_sold"]
    with pytest.raises(AssertionError):
        changes(sold, before, f"{after:,}", timeout_ms=3000)


# -- PostgreSQL: workers and the lanes they hold -----------------------------------------

LEASED_LANES = 4
GROUPS = [processor.name for processor in shop_processors()]
LEASE_TTL = 2.0
START_DEADLINE = 45.0
"""Seconds for processes to start: a busy machine takes many to import them."""


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as output:
        return subprocess.Popen(
            [TILLFLOW, *command], env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(DEADLINE)


@dataclass
class LeasedShop:
    """``tillflow serve --no-processors`` on a PostgreSQL database of four lanes, and two
    ``tillflow worker`` processes sharing its processors (each run whole by one)."""

    shop: Shop
    store: PostgresEventStore
    workers: list[subprocess.Popen[str]]

    def holdings(self) -> dict[int, dict[str, list[int]]]:
        """Per worker pid, the lanes it holds now, per group (from the lease table)."""
        held: dict[int, dict[str, list[int]]] = {}
        for row in self.store.leases.rows():
            if row.held and row.owner is not None:
                pid = int(row.owner.split(":")[1])
                held.setdefault(pid, {}).setdefault(row.processor, []).append(row.lane)
        return held

    def settled(self, pids: set[int], timeout: float = DEADLINE) -> dict[int, dict[str, list[int]]]:
        """The holdings once every group is held whole (all its lanes) by one of ``pids``
        and the groups are spread out over them (the shop's processors are run whole)."""
        deadline = time.monotonic() + timeout
        while True:
            held = self.holdings()
            whole = [
                len(lanes) == LEASED_LANES for groups in held.values() for lanes in groups.values()
            ]
            counts = [len(held.get(pid, {})) for pid in pids]
            if (
                set(held) == pids
                and len(whole) == len(GROUPS)
                and all(whole)
                and max(counts) - min(counts) <= 1
            ):
                return held
            assert time.monotonic() < deadline, held
            time.sleep(0.05)


@pytest.fixture
def leased_shop(postgres_url: str, tmp_path: Path) -> Iterator[LeasedShop]:
    store = PostgresEventStore(postgres_url, lanes=LEASED_LANES, registry=service_registry())
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        "TILLFLOW_DATABASE": postgres_url,
        "TILLFLOW_PORT": str(port),
        "TILLFLOW_HOST": "127.0.0.1",
        "TILLFLOW_LOG_LEVEL": "warning",
    }
    book = TokenBook(store)
    tokens = {role.value: book.create(role.value, role)[0] for role in Role}
    url = f"http://127.0.0.1:{port}"
    processes: list[subprocess.Popen[str]] = []
    try:
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            log = tmp_path / "serve.log"
            server = start(["serve", "--no-processors"], env, log)
            processes.append(server)
            wait_until_healthy(url, server, log, START_DEADLINE)
            worker = ["worker", "--lease-ttl", str(LEASE_TTL)]
            workers = [start(worker, env, tmp_path / f"worker-{n}.log") for n in (1, 2)]
            processes.extend(workers)
            yield LeasedShop(Shop(url, client, tokens, env), store, workers)
    finally:
        for process in processes:
            stop(process)
        store.close()


def worker_item(page: Page, pid: int) -> Locator:
    return page.locator(f'#worker-list li[data-worker*=":{pid}:"]')


def lanes_text(lanes: list[int]) -> str:
    return f"{'lane' if len(lanes) == 1 else 'lanes'} {', '.join(map(str, sorted(lanes)))}"


def shows_holdings(page: Page, held: dict[int, dict[str, list[int]]]) -> None:
    """The page lists exactly these workers, each with its lanes per group."""
    expect(page.locator("#worker-list li")).to_have_count(len(held))
    for pid, groups in held.items():
        for group, lanes in groups.items():
            expect(
                worker_item(page, pid).locator(f'[data-group="{group}"] [data-field="lanes"]')
            ).to_have_text(lanes_text(lanes))
        expect(worker_item(page, pid).locator('[data-field="expiry"]')).to_contain_text(
            "leases expire in"
        )


def test_the_pipeline_shows_workers_and_their_lanes_live_on_postgres(
    leased_shop: LeasedShop, page: Page
) -> None:
    shop, (first, second) = leased_shop.shop, leased_shop.workers
    page.goto(f"{shop.url}/dashboard#token={shop.tokens['viewer']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#workers")).to_have_attribute("data-leased", "true")
    shared = leased_shop.settled({first.pid, second.pid}, START_DEADLINE)
    shows_holdings(page, shared)
    expect(page.locator("#workers-note")).to_have_text("2 live · lanes shared by leases")
    expect(page.locator("#unheld")).to_be_hidden()

    # each lane of the pipeline names its holder
    shop.post("/catalog", {"product_id": "milk", "name": "Milk", "price": 99}, "manager")
    shop.report(shop.checkout("till-1", {"milk": 1}))
    for pid, groups in shared.items():
        owner = next(r.owner for r in leased_shop.store.leases.rows() if f":{pid}:" in str(r.owner))
        for lane in groups.get("reporting", []):
            item = page.locator(f'#pipeline [data-processor="reporting"][data-lane="{lane}"]')
            expect(item.locator('[data-field="owner"]')).to_contain_text(f"held by {owner}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-postgres.png")

    # SIGTERM: the first resigns at once and the second takes every lane
    first.send_signal(signal.SIGTERM)
    assert first.wait(DEADLINE) == 0
    alone = leased_shop.settled({second.pid})
    assert alone == {second.pid: {group: [0, 1, 2, 3] for group in GROUPS}}
    shows_holdings(page, alone)
    expect(page.locator("#workers-note")).to_have_text("1 live · lanes shared by leases")

    # SIGKILL: its leases run out and the page says no worker holds the lanes
    second.kill()
    second.wait(DEADLINE)
    expect(page.locator("#unheld")).to_have_text(
        "No worker holds " + " · ".join(f"{group} lanes 0, 1, 2, 3" for group in GROUPS)
    )
    expect(page.locator("#unheld")).to_be_visible()
    expect(page.locator("#worker-list li")).to_have_count(0)
    expect(page.locator("#workers-note")).to_have_text("none live: no lane is processed")
    expect(
        page.locator('#pipeline [data-processor="inventory"][data-lane="0"] [data-field="owner"]')
    ).to_have_text("no worker holds this lane")
