"""The sale service's catalog refresh under threads, played deterministically: a refresh
that read the catalog before a change made through the service was appended must not
publish that older read over the change (the next checkout must see the change at once,
whatever ``CATALOG_FRESH_FOR`` allows).

Thread ``refresher`` refreshes the cache and is held inside its read of the catalog stream
until the main thread waits for the refresh lock, or, if it never does, until the main
thread's change is done. Two schedules: the refresher reads before the change decides
(``before``), or between the change's decision and its append (``between``). Without the
lock around the refresh (``before``) or around marking the cache stale (``between``), the
refresher publishes its older read after the change: the next checkout is priced at the
old price."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import TracebackType

import pytest

from tillflow.engine import ANY_VERSION, MemoryEventStore, NewEvent, Receipt, RecordedEvent
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, RepriceProduct
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, checkout_stream
from tillflow.shop.sale.service import SaleService

DEADLINE = 30.0
REFRESHER = "refresher"


class HeldRead(MemoryEventStore):
    """A store holding the refresher's first catalog read until ``go``. With ``start``,
    the main thread's catalog append first runs ``start`` (which starts the refresher and
    waits until it is reading)."""

    def __init__(self) -> None:
        super().__init__(registry=REGISTRY)
        self.reading = threading.Event()
        self.go = threading.Event()
        self.held = False
        self.start: Callable[[], None] | None = None

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        events = super().read_stream(stream, after_version, upto_version)
        refresher = threading.current_thread().name == REFRESHER
        if stream == CATALOG_STREAM and refresher and not self.held:
            self.held = True
            self.reading.set()
            assert self.go.wait(DEADLINE), "the main thread neither changed nor waited"
        return events

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        if stream == CATALOG_STREAM and self.start is not None:
            start, self.start = self.start, None
            start()
        return super().append(stream, events, expected_version)


class WatchedLock:
    """A lock that sets ``contended`` when an acquire has to wait."""

    def __init__(self, contended: threading.Event) -> None:
        self.lock = threading.Lock()
        self.contended = contended

    def __enter__(self) -> WatchedLock:
        if not self.lock.acquire(blocking=False):
            self.contended.set()
            self.lock.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.lock.release()


@pytest.mark.parametrize("schedule", ["before", "between"])
def test_a_refresh_that_read_before_a_change_does_not_hide_the_change(
    monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    monkeypatch.setattr("tillflow.shop.sale.service.CATALOG_FRESH_FOR", 1e9)  # cache for good
    store = HeldRead()
    sale = SaleService(store)
    sale.add_product(AddProduct("apple", "Apple", 120))
    sale.checkout(Checkout("first", "till-1", [LineRequest("apple", 1)]))  # cached at 120
    monkeypatch.setattr(sale, "_refreshing", WatchedLock(store.go))

    failures: list[BaseException] = []

    def refresh() -> None:
        try:
            sale.catalog()
        except BaseException as error:  # reported below
            failures.append(error)

    refresher = threading.Thread(target=refresh, name=REFRESHER, daemon=True)

    def start() -> None:
        refresher.start()
        assert store.reading.wait(DEADLINE)

    if schedule == "before":
        start()
    else:
        store.start = start
    sale.reprice_product(RepriceProduct("apple", 150))  # through this service: counts at once
    store.go.set()  # the change is done (the lock, if taken, already let the refresher go)
    refresher.join(DEADLINE)
    assert not refresher.is_alive() and not failures, failures
    assert refresher.ident is not None, "the refresher never ran"

    sale.checkout(Checkout("second", "till-1", [LineRequest("apple", 1)]))
    [event] = store.read_stream(checkout_stream("second"))
    assert event.decode(CheckedOut).lines[0].unit_price == 150
