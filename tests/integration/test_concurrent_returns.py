"""Concurrent returns of a checkout's last unit, on one real SQLite file: each racer is a
thread with a store and a sale service of its own (as separate tills would be), all start
together, and every one of them has read the checkout (no return yet) before any appends.
Exactly one may win; the others get :class:`ReturnExceedsPurchase`, because a return is
appended guarded by the checkout stream's version.

The negative control removes that guard (the racers' returns appended with ANY_VERSION)
and shows the same race then returns the unit several times: the harness really races."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from tillflow.engine import ANY_VERSION, NewEvent, Receipt, RecordedEvent, SqliteEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import ReturnExceedsPurchase
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import checkout_stream
from tillflow.shop.sale.service import SaleService

RACERS = 6
DEADLINE = 60.0
STREAM = checkout_stream("c-1")


class RacingStore(SqliteEventStore):
    """A store whose first read of the checkout's stream, in each racer, waits until every
    racer has made that read: all decide on the same history. ``unguarded`` appends to that
    stream with ANY_VERSION (the guard removed: the negative control)."""

    def __init__(self, path: Path, start: threading.Barrier, unguarded: bool) -> None:
        super().__init__(path, registry=REGISTRY, durability="off")
        self.start = start
        self.unguarded = unguarded
        self.waited = False

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        events = super().read_stream(stream, after_version, upto_version)
        if stream == STREAM and not self.waited:
            self.waited = True
            self.start.wait(DEADLINE)
        return events

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        if stream == STREAM and self.unguarded:
            expected_version = ANY_VERSION
        return super().append(stream, events, expected_version)


def _race(path: Path, unguarded: bool) -> tuple[list[str], list[BaseException], int]:
    """``RACERS`` threads each return the checkout's last unit under its own return id:
    the return ids that won, the errors of the others, and the units returned as
    recorded."""
    start = threading.Barrier(RACERS)
    won: list[str] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def racer(number: int) -> None:
        return_id = f"race-{number}"
        with RacingStore(path, start, unguarded) as store:
            try:
                SaleService(store).return_items(
                    ReturnItems(return_id, "c-1", [LineRequest("apple", 1)])
                )
            except BaseException as error:  # each outcome is checked by the test
                with lock:
                    refused.append(error)
            else:
                with lock:
                    won.append(return_id)

    threads = [threading.Thread(target=racer, args=(n,), daemon=True) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    with SqliteEventStore(path, registry=REGISTRY) as store:
        history = store.read_stream(STREAM)
    returned = sum(len(e.payload()["lines"]) for e in history if e.type == "ItemsReturned")
    return won, refused, returned


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A shop file with checkout c-1: two apples, one of them already returned."""
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=REGISTRY, durability="off") as store:
        sale = SaleService(store)
        sale.add_product(AddProduct("apple", "Apple", 120))
        sale.checkout(Checkout("c-1", "till-1", [LineRequest("apple", 2)]))
        sale.return_items(ReturnItems("r-0", "c-1", [LineRequest("apple", 1)]))
    return path


def test_exactly_one_of_concurrent_returns_of_the_last_unit_wins(database: Path) -> None:
    won, refused, returned = _race(database, unguarded=False)
    assert len(won) == 1, won
    assert len(refused) == RACERS - 1
    for error in refused:
        assert isinstance(error, ReturnExceedsPurchase), repr(error)
        assert (error.product_id, error.requested, error.returnable) == ("apple", 1, 0)
    assert returned == 2  # r-0's unit and the winner's


def test_negative_control_without_the_version_guard_the_last_unit_is_returned_many_times(
    database: Path,
) -> None:
    won, refused, returned = _race(database, unguarded=True)
    assert len(won) > 1, "the racers did not race: the test above would prove nothing"
    assert returned == 1 + len(won)
    assert all(isinstance(error, ReturnExceedsPurchase) for error in refused)
