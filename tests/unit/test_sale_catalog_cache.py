"""Sale's catalog cache under threads: every checkout is priced from one state the catalog
stream really had, however many threads refresh the cache while the catalog is repriced."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tillflow.engine import EventStore, MemoryEventStore, RecordedEvent
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import ProductDiscontinued
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    RepriceProduct,
)
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, ProductAdded, ProductRepriced
from tillflow.shop.sale.service import SaleService

PRODUCTS = ["apple", "bread", "cheese"]
CHECKOUTS = 1_500
DEADLINE = 60.0
REPRICER = "repricer"


class SlowCatalogReads(MemoryEventStore):
    """A store whose catalog reads take a moment (as a database's do), except on the thread
    that reprices: a refresh is still folding in what it read when the catalog moves on."""

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        events = super().read_stream(stream, after_version, upto_version)
        if stream == CATALOG_STREAM and threading.current_thread().name != REPRICER:
            time.sleep(0.0002)
        return events


@pytest.fixture(autouse=True)
def _fine_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond or so: a torn read gets its chance."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _catalog_states(store: EventStore) -> set[tuple[int, ...]]:
    """Every state the catalog stream had: the prices of ``PRODUCTS`` after each event (once
    all were added), folded here, apart from the code under test."""
    prices: dict[str, int] = {}
    states = set()
    for event in store.read_stream(CATALOG_STREAM):
        changed = (
            event.decode(ProductAdded)
            if event.type == "ProductAdded"
            else event.decode(ProductRepriced)
        )
        prices[changed.product_id] = changed.price
        if len(prices) == len(PRODUCTS):
            states.add(tuple(prices[product] for product in PRODUCTS))
    return states


class Hammer:
    """Threads that each repeat one piece of work until ``done``; the first error stops all."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def repeat(self, work: Callable[[int], None], name: str) -> None:
        def loop() -> None:
            round_ = 0
            try:
                while not self.done.is_set():
                    work(round_)
                    round_ += 1
            except BaseException as error:  # reported by the test
                self.errors.append(error)
                self.done.set()

        self.threads.append(threading.Thread(target=loop, name=name, daemon=True))

    def run(self, until: Callable[[], bool]) -> None:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + DEADLINE
        while not self.done.is_set() and not until() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.done.set()
        for thread in self.threads:
            thread.join(DEADLINE)
        assert not self.errors, self.errors
        assert not any(thread.is_alive() for thread in self.threads)


def test_checkouts_from_many_threads_are_priced_from_one_real_catalog_state_while_repriced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tillflow.shop.sale.service.CATALOG_FRESH_FOR", 0.0)  # refresh every time
    store = SlowCatalogReads(registry=REGISTRY)
    sale = SaleService(store)
    for index, product in enumerate(PRODUCTS):
        sale.add_product(AddProduct(product, product.title(), 100 + index))
    lines = [LineRequest(product, 1) for product in PRODUCTS]
    recorded: list[str] = []

    def checkout(round_: int) -> None:
        name = threading.current_thread().name
        sale.checkout(Checkout(f"{name}-{round_}", name, lines))
        recorded.append(name)

    def checkout_async(round_: int) -> None:
        asyncio.run(sale.checkout_async(Checkout(f"async-{round_}", "async", lines)))
        recorded.append("async")

    def list_catalog(round_: int) -> None:  # GET /catalog while others refresh
        assert sorted(sale.catalog().products) == sorted(PRODUCTS)

    def reprice(round_: int) -> None:
        # round-robin: each version differs from the one before in one product's price, so
        # a checkout that mixes the prices of two versions matches no state
        sale.reprice_product(RepriceProduct(PRODUCTS[round_ % len(PRODUCTS)], 1_000 + round_))

    hammer = Hammer()
    hammer.repeat(reprice, REPRICER)
    for name in ("till-1", "till-2"):
        hammer.repeat(checkout, name)
    hammer.repeat(checkout_async, "async")
    hammer.repeat(list_catalog, "catalog")
    hammer.run(until=lambda: len(recorded) >= CHECKOUTS)

    states = _catalog_states(store)
    assert len(states) > 10, "the catalog was hardly repriced while checkouts ran"
    torn = []
    for lane in range(store.lane_count):
        for event in store.iter_all(lane):
            if event.type == "CheckedOut":
                checked_out = event.decode(CheckedOut)
                assert [line.product_id for line in checked_out.lines] == PRODUCTS
                prices = tuple(line.unit_price for line in checked_out.lines)
                assert checked_out.total == sum(prices)
                if prices not in states:
                    torn.append((checked_out.checkout_id, prices))
    assert len(recorded) >= CHECKOUTS
    assert not torn, (
        f"{len(torn)} of {len(recorded)} checkouts priced from no real state: {torn[:3]}"
    )


def test_a_reprice_or_discontinuation_through_the_service_counts_for_the_next_checkout_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "tillflow.shop.sale.service.CATALOG_FRESH_FOR", 3600.0
    )  # never stale by age
    sale = SaleService(MemoryEventStore(registry=REGISTRY))
    sale.add_product(AddProduct("apple", "Apple", 120))
    lines = [LineRequest("apple", 1)]
    _, first = asyncio.run(sale.checkout_recorded_async(Checkout("c-1", "t", lines)))
    assert first.total == 120
    sale.reprice_product(RepriceProduct("apple", 99))
    _, repriced = asyncio.run(sale.checkout_recorded_async(Checkout("c-2", "t", lines)))
    assert repriced.total == 99
    sale.discontinue_product(DiscontinueProduct("apple"))
    with pytest.raises(ProductDiscontinued):
        asyncio.run(sale.checkout_async(Checkout("c-3", "t", lines)))
