"""`tillflow worker` processes sharing a PostgreSQL shop's processors by leases (each run
whole by one worker, spread out over the workers), takeover after SIGKILL within the TTL
and a margin, a SIGSTOPped worker woken past its lease commits nothing, and the report
equals the truth throughout."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tillflow.engine import format_id, new_event_id
from tillflow.engine.postgres import LeaseRow, PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop, shop_processors
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.reporting.audit import read_rows, read_totals
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut, checkout_stream

LANES = 6
TTL = 1.5
MARGIN = 5.0
PRODUCTS = [f"p{n}" for n in range(4)]


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until ``condition`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


class Workers:
    """`tillflow worker` processes on one database, by pid."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tillflow",
                "worker",
                "--database",
                self.url,
                "--lease-ttl",
                str(TTL),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()


@pytest.fixture
def workers(postgres_url: str) -> Iterator[Workers]:
    started = Workers(postgres_url)
    try:
        yield started
    finally:
        started.stop_all()


def owners(store: PostgresEventStore) -> dict[str, Counter[int]]:
    """Per group, how many lanes each pid holds now."""
    found: dict[str, Counter[int]] = {}
    for row in store.leases.rows():
        if row.held:
            found.setdefault(row.processor, Counter())[pid_of(row)] += 1
    return found


def pid_of(row: LeaseRow) -> int:
    assert row.owner is not None
    return int(row.owner.split(":")[1])


def placed(store: PostgresEventStore, pids: set[int]) -> bool:
    """Every group held whole (all its lanes) by one of ``pids``, and the groups spread out
    over them: each holds as many as any other, or one more (the shop's processors are run
    whole: their lanes write the same stock streams and report rows)."""
    held = owners(store)
    if len(held) != len(shop_processors()):
        return False
    holders: dict[str, int] = {}
    for group, counts in held.items():
        if sum(counts.values()) != LANES or len(counts) != 1 or not set(counts) <= pids:
            return False
        [holders[group]] = counts
    load = Counter(holders.values())
    loads = [load[pid] for pid in pids]
    return max(loads) - min(loads) <= 1


def holder(store: PostgresEventStore, group: str) -> int:
    """The pid holding ``group`` (held whole)."""
    [pid] = owners(store)[group]
    return pid


class Till:
    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.shop = Shop(store)
        self.truth = ShopTruth()
        self.count = 0

    def checkouts(self, n: int) -> None:
        for index in range(n):
            lines = [LineRequest(PRODUCTS[(self.count + index) % len(PRODUCTS)], 1 + index % 3)]
            checkout_id = format_id(new_event_id())
            receipt = self.shop.sale.checkout(Checkout(checkout_id, "till-1", lines))
            [event] = self.store.read_stream(checkout_stream(checkout_id), 0, 1)
            self.truth.checked_out(event.decode(CheckedOut), receipt)
        self.count += n

    def report_equals_truth(self) -> None:
        async def drain() -> None:
            async with self.shop.runtime(run=[]) as runtime:  # the workers run them all
                await runtime.drain(timeout=60)

        asyncio.run(drain())
        rows = read_rows(self.store, REPORT_VIEWS)
        totals = read_totals(self.store, REPORT_VIEWS)
        assert self.truth.violations(rows, totals) == []
        assert totals.checkouts == self.count


def test_workers_share_the_groups_take_over_and_fence_a_woken_worker(
    postgres_url: str, workers: Workers
) -> None:
    store = PostgresEventStore(postgres_url, lanes=LANES, registry=REGISTRY)
    try:
        till = Till(store)
        for number, product_id in enumerate(PRODUCTS):
            till.shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + number))
            till.shop.inventory.receive(ReceiveStock(product_id, 10_000))
            till.truth.received(product_id, 10_000)
        started = [workers.start() for _ in range(3)]
        pids = {process.pid for process in started}
        eventually(lambda: placed(store, pids))
        till.checkouts(60)
        till.report_equals_truth()

        by_pid = {process.pid: process for process in started}
        killed = by_pid[holder(store, "inventory")]
        orphaned = owners(store)["inventory"][killed.pid]
        killed.kill()
        killed.wait()
        taken_over = eventually(lambda: placed(store, pids - {killed.pid}))
        assert orphaned > 0 and taken_over < TTL + MARGIN, taken_over
        till.checkouts(60)
        till.report_equals_truth()

        paused = by_pid[holder(store, "reporting")]
        paused.send_signal(signal.SIGSTOP)
        till.checkouts(20)  # work on its lanes, some of it perhaps in hand when it stopped
        eventually(lambda: placed(store, pids - {killed.pid, paused.pid}))
        till.checkouts(20)
        till.report_equals_truth()
        paused.send_signal(signal.SIGCONT)  # wakes past its lease: whatever it commits is fenced
        eventually(lambda: placed(store, pids - {killed.pid}))
        till.checkouts(20)
        till.report_equals_truth()
        print(f"takeover after SIGKILL of {orphaned} lanes: {taken_over:.2f} s")
    finally:
        store.close()
