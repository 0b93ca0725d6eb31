"""The shop end to end on PostgreSQL (16 lanes, a private cluster): tills, deliveries and
returns concurrently with the asyncio runtime; every report read while they run is a
consistent cut, and after the drain the report equals the truth."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from tillflow.engine import EventStore, format_id, new_event_id
from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.reporting.audit import ConsistentCutAudit, IdentityAudit, read_rows, read_totals
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream

PRODUCTS = [f"p{n}" for n in range(8)]
TILLS = 4
CHECKOUTS_PER_TILL = 50


async def test_read_your_writes_on_postgres(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.inventory.receive(ReceiveStock("apple", 10))
        async with shop.runtime() as runtime:
            receipt = await shop.sale.checkout_async(
                Checkout("c-1", "till-1", [LineRequest("apple", 4)])
            )
            report = await shop.report.read(runtime, wait_for=receipt, timeout=20)
            assert report.freshness.waited == "reached"
            [row] = report.rows
            assert (row.units_sold, row.revenue, row.stock_left) == (4, 480, 6)


async def test_the_shop_on_postgres_reports_the_truth(postgres_url: str) -> None:
    rng = random.Random(7)
    truth = ShopTruth()
    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        assert store.lane_count == 16
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
            for _ in range(CHECKOUTS_PER_TILL):
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

        async def manager() -> None:
            for round_number in range(30):
                product_id = rng.choice(PRODUCTS)
                quantity = rng.randint(1, 10)
                await asyncio.to_thread(shop.inventory.receive, ReceiveStock(product_id, quantity))
                truth.received(product_id, quantity)
                if round_number % 6 == 5 and sold:
                    checked = sold.pop(rng.randrange(len(sold)))  # one unit back, once
                    line = checked.lines[0]
                    command = ReturnItems(
                        f"r-{round_number}", checked.checkout_id, [LineRequest(line.product_id, 1)]
                    )
                    receipt = await asyncio.to_thread(shop.sale.return_items, command)
                    last = store.read_stream(checkout_stream(checked.checkout_id))[-1]
                    truth.returned(last.decode(ItemsReturned), receipt)

        async def reader() -> None:
            nonlocal reads
            while not stop.is_set():
                for audit in audits:
                    problems.extend(await asyncio.to_thread(audit, store))
                reads += 1
                await asyncio.sleep(0.01)

        stop = asyncio.Event()
        async with shop.runtime() as runtime:
            watching = asyncio.create_task(reader())
            await asyncio.gather(*(till(n) for n in range(TILLS)), manager())
            await runtime.drain(timeout=60)
            stop.set()
            await watching
        assert problems == [], problems[:5]
        assert reads > 3
        rows = read_rows(store, REPORT_VIEWS)
        totals = read_totals(store, REPORT_VIEWS)
        assert truth.violations(rows, totals) == []
        assert totals.checkouts == TILLS * CHECKOUTS_PER_TILL
        used = [lane for lane, head in store.heads().items() if head]
        assert len(used) > 8, f"checkouts should spread over the lanes: {store.heads()}"
