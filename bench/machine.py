"""The limits of this machine for the point-of-sale workload: the same bookkeeping with
nothing in between, so that what tillflow and the peer spend beyond it is visible.

* :func:`bare_loop` — one Python loop: price each line from the catalog, take it off the
  stock, add it to the product's sales and to the totals. No events, no store, no
  processors: the arithmetic a report needs and nothing else.
* :func:`asyncio_pipeline` — three asyncio tasks joined by bounded queues, as the shop's
  pipeline is: Sale prices a checkout, Inventory takes its lines off the stock and passes
  the stock after each, Reporting folds them into the report. One queue item per checkout;
  no store, no durability. Open loop with ``rate`` (latency from the scheduled send to
  Reporting having folded the checkout in).

Raw SQLite inserts, the durable limit, are :mod:`bench.raw`'s. Every run here is checked
against :func:`bench.pos.truth` like every contender.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from bench.pos import PosReport, ProductFigures, workload
from bench.shop import STARTING_STOCK

QUEUE_SIZE = 1024


@dataclass
class LimitRun:
    checkouts: int
    seconds: float
    report: PosReport
    latency: list[float] = field(default_factory=list)
    """Milliseconds from scheduled send to folded in (open loop only)."""


def _report(
    sold: dict[str, int],
    revenue: dict[str, int],
    stock: dict[str, int],
    checkouts: int,
    total: int,
) -> PosReport:
    return PosReport(
        {
            product_id: ProductFigures(sold[product_id], revenue[product_id], stock[product_id])
            for product_id in sold
        },
        checkouts,
        total,
    )


def bare_loop(checkouts: int) -> LimitRun:
    """The bookkeeping of ``checkouts`` checkouts in one loop."""
    pool = workload()
    prices = pool.prices
    stock = dict.fromkeys(prices, STARTING_STOCK)
    sold = dict.fromkeys(prices, 0)
    revenue = dict.fromkeys(prices, 0)
    count = total = 0
    asked = pool.asked
    baskets = len(asked)
    started = time.perf_counter()
    for number in range(checkouts):
        checkout_total = 0
        for product_id, quantity in asked[number % baskets]:
            line_total = prices[product_id] * quantity
            stock[product_id] -= quantity
            sold[product_id] += quantity
            revenue[product_id] += line_total
            checkout_total += line_total
        count += 1
        total += checkout_total
    seconds = time.perf_counter() - started
    return LimitRun(checkouts, seconds, _report(sold, revenue, stock, count, total))


class _Stages:
    """The three stages' state: the stock Inventory keeps, the figures Reporting keeps."""

    def __init__(self, checkouts: int, rate: float) -> None:
        pool = workload()
        self.checkouts, self.rate = checkouts, rate
        self.prices = pool.prices
        self.asked = pool.asked
        self.stock = dict.fromkeys(self.prices, STARTING_STOCK)
        self.sold = dict.fromkeys(self.prices, 0)
        self.revenue = dict.fromkeys(self.prices, 0)
        self.left = dict.fromkeys(self.prices, STARTING_STOCK)
        self.count = self.total = 0
        self.priced: asyncio.Queue[tuple[int, list[tuple[str, int, int]], int] | None]
        self.priced = asyncio.Queue(QUEUE_SIZE)
        self.taken: asyncio.Queue[tuple[int, list[tuple[str, int, int, int]]] | None]
        self.taken = asyncio.Queue(QUEUE_SIZE)
        self.scheduled = [0.0] * checkouts if rate else []
        self.folded = [math.nan] * checkouts if rate else []

    async def sale(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.01
        baskets = len(self.asked)
        for number in range(self.checkouts):
            if self.rate:
                due = start + number / self.rate
                self.scheduled[number] = due
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
            lines = [
                (product_id, quantity, self.prices[product_id] * quantity)
                for product_id, quantity in self.asked[number % baskets]
            ]
            await self.priced.put((number, lines, sum(line[2] for line in lines)))
        await self.priced.put(None)

    async def inventory(self) -> None:
        stock = self.stock
        while (item := await self.priced.get()) is not None:
            number, lines, _ = item
            effects = []
            for product_id, quantity, line_total in lines:
                stock[product_id] -= quantity
                effects.append((product_id, quantity, line_total, stock[product_id]))
            await self.taken.put((number, effects))
        await self.taken.put(None)

    async def reporting(self) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self.taken.get()) is not None:
            number, effects = item
            for product_id, quantity, line_total, stock_after in effects:
                self.sold[product_id] += quantity
                self.revenue[product_id] += line_total
                self.left[product_id] = stock_after
                self.total += line_total
            self.count += 1
            if self.rate:
                self.folded[number] = loop.time()


async def asyncio_pipeline(checkouts: int, rate: float = 0.0) -> LimitRun:
    """``checkouts`` checkouts through Sale → Inventory → Reporting tasks; as fast as the
    queues take them, or one every ``1 / rate`` seconds (open loop) when ``rate``."""
    stages = _Stages(checkouts, rate)
    started = time.perf_counter()
    await asyncio.gather(stages.sale(), stages.inventory(), stages.reporting())
    seconds = time.perf_counter() - started
    report = _report(stages.sold, stages.revenue, stages.left, stages.count, stages.total)
    run = LimitRun(checkouts, seconds, report)
    if rate:
        run.latency = [
            (done - due) * 1000 for done, due in zip(stages.folded, stages.scheduled, strict=True)
        ]
    return run
