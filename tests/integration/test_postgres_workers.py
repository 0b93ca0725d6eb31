"""`tillflow worker` processes sharing the lanes of a PostgreSQL shop by leases: fair
shares, takeover after SIGKILL within the TTL and a margin, a SIGSTOPped worker woken
past its lease commits nothing, and the report equals the truth throughout."""

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


def shared_fairly(store: PostgresEventStore, pids: set[int]) -> bool:
    """Every lane of every group held, by the given workers only, ≤ the fair share each."""
    held = owners(store)
    share = -(-LANES // len(pids))
    return len(held) == len(shop_processors()) and all(
        sum(counts.values()) == LANES and set(counts) <= pids and max(counts.values()) <= share
        for counts in held.values()
    )


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


def test_workers_share_lanes_take_over_and_fence_a_woken_worker(
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
        eventually(lambda: shared_fairly(store, pids))
        till.checkouts(60)
        till.report_equals_truth()

        killed = started[0]
        orphaned = owners(store)["inventory"][killed.pid]
        killed.kill()
        killed.wait()
        taken_over = eventually(lambda: shared_fairly(store, pids - {killed.pid}))
        assert orphaned > 0 and taken_over < TTL + MARGIN, taken_over
        till.checkouts(60)
        till.report_equals_truth()

        paused = started[1]
        paused.send_signal(signal.SIGSTOP)
        till.checkouts(20)  # work on its lanes, some of it perhaps in hand when it stopped
        eventually(lambda: shared_fairly(store, pids - {killed.pid, paused.pid}))
        till.checkouts(20)
        till.report_equals_truth()
        paused.send_signal(signal.SIGCONT)  # wakes past its lease: whatever it commits is fenced
        eventually(lambda: shared_fairly(store, pids - {killed.pid}))
        till.checkouts(20)
        till.report_equals_truth()
        print(f"takeover after SIGKILL of {orphaned} lanes: {taken_over:.2f} s")
    finally:
        store.close()
