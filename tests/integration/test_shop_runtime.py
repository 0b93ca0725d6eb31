"""The shop on a real SQLite file with the asyncio runtime: tills, deliveries, counts and
returns concurrently; the report read while they run must be a consistent cut every time,
read-your-writes must hold, and after the drain every figure must equal the truth."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from tillflow.engine import EventStore, SqliteEventStore, format_id, new_event_id
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.reporting.audit import ConsistentCutAudit, IdentityAudit, read_rows, read_totals
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream

PRODUCTS = [f"p{n}" for n in range(8)]


async def test_read_your_writes_shows_the_checkout_in_stock_and_sales(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.inventory.receive(ReceiveStock("apple", 10))
        async with shop.runtime() as runtime:
            receipt = await shop.sale.checkout_async(
                Checkout("c-1", "till-1", [LineRequest("apple", 4)])
            )
            report = await shop.report.read(runtime, wait_for=receipt, timeout=10)
            assert report.freshness.waited == "reached"
            [row] = report.rows
            assert (row.units_sold, row.revenue, row.stock_left) == (4, 480, 6)
            assert row.as_of.version == 2
            assert report.totals.checkouts == 1


async def test_an_oversell_is_shown_as_an_open_shortfall_until_a_delivery(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        async with shop.runtime() as runtime:
            receipt = shop.sale.checkout(Checkout("c-1", "t", [LineRequest("apple", 3)]))
            [row] = (await shop.report.read(runtime, receipt, 10)).rows
            assert (row.stock_left, row.open_shortfall, row.units_oversold) == (-3, 3, 3)
            delivered = shop.inventory.receive(ReceiveStock("apple", 5))
            [row] = (await shop.report.read(runtime, delivered, 10)).rows
            assert (row.stock_left, row.open_shortfall, row.units_oversold) == (2, 0, 3)


async def test_concurrent_shop_reads_are_consistent_cuts_and_end_at_the_truth(  # noqa: PLR0915
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    truth = ShopTruth()
    with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as store:
        shop = Shop(store)
        for number, product_id in enumerate(PRODUCTS):
            shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + number))
        sold: list[CheckedOut] = []
        audits: list[Callable[[EventStore], list[str]]] = [
            ConsistentCutAudit(REPORT_VIEWS),
            IdentityAudit(REPORT_VIEWS),
        ]
        problems: list[str] = []
        reads = 0

        async def till(number: int) -> None:
            for _ in range(60):
                lines = [
                    LineRequest(rng.choice(PRODUCTS), rng.randint(1, 4))
                    for _ in range(rng.randint(1, 5))
                ]
                checkout_id = format_id(new_event_id())
                receipt = await shop.sale.checkout_async(
                    Checkout(checkout_id, f"till-{number}", lines)
                )
                [event] = store.read_stream(checkout_stream(checkout_id), 0, 1)
                truth.checked_out(event.decode(CheckedOut), receipt)
                sold.append(event.decode(CheckedOut))
                await asyncio.sleep(0)

        async def manager() -> None:
            for round_number in range(40):
                product_id = rng.choice(PRODUCTS)
                quantity = rng.randint(1, 10)
                await asyncio.to_thread(shop.inventory.receive, ReceiveStock(product_id, quantity))
                truth.received(product_id, quantity)
                if round_number % 10 == 5 and sold:
                    checked = rng.choice(sold)
                    line = checked.lines[0]
                    command = ReturnItems(
                        f"r-{round_number}", checked.checkout_id, [LineRequest(line.product_id, 1)]
                    )
                    try:
                        receipt = await asyncio.to_thread(shop.sale.return_items, command)
                    except Exception:
                        continue
                    last = store.read_stream(checkout_stream(checked.checkout_id))[-1]
                    truth.returned(last.decode(ItemsReturned), receipt)
                await asyncio.sleep(0.005)

        async def reader() -> None:
            nonlocal reads
            while not stop.is_set():
                for audit in audits:
                    problems.extend(audit(store))
                reads += 1
                await asyncio.sleep(0.01)

        stop = asyncio.Event()
        async with shop.runtime() as runtime:
            watching = asyncio.create_task(reader())
            await asyncio.gather(*(till(n) for n in range(4)), manager())
            await runtime.drain(timeout=60)
            stop.set()
            await watching
        assert problems == [], problems[:5]
        assert reads > 5
        rows = read_rows(store, REPORT_VIEWS)
        assert truth.violations(rows, read_totals(store, REPORT_VIEWS)) == []
        assert read_totals(store, REPORT_VIEWS).checkouts == 240


async def test_a_count_during_checkouts_keeps_every_row_consistent(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 100))
        shop.inventory.receive(ReceiveStock("apple", 100))
        audit = ConsistentCutAudit(REPORT_VIEWS)
        async with shop.runtime() as runtime:
            for n in range(30):
                await shop.sale.checkout_async(Checkout(f"c-{n}", "t", [LineRequest("apple", 1)]))
                if n == 15:
                    await asyncio.to_thread(shop.inventory.count, CountStock("apple", 50))
                assert audit(store) == []
            await runtime.drain(timeout=30)
        [row] = read_rows(store, REPORT_VIEWS)
        assert audit(store) == []
        assert row.units_sold == 30
        explained = row.received - row.units_sold + row.count_adjustments
        assert explained == row.stock_left
