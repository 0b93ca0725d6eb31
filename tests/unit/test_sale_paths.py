"""Every checkout path of the sale service — ``checkout``, ``checkout_recorded``,
``checkout_async``, ``checkout_recorded_async`` and ``checkout_many`` — prices a checkout by
the same rule: from the service's cached catalog while it is fresh (``CATALOG_FRESH_FOR``),
re-read once it is not. So one checkout is never priced differently depending on the path
that takes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tillflow.engine import EventStore, MemoryEventStore, TillflowError
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CheckoutConflict, ProductDiscontinued
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    RepriceProduct,
)
from tillflow.shop.sale.events import CheckedOut, checkout_stream
from tillflow.shop.sale.service import SaleService


def _many(sale: SaleService, command: Checkout) -> None:
    [outcome] = sale.checkout_many([command])
    if isinstance(outcome, TillflowError):
        raise outcome


PATHS: dict[str, Callable[[SaleService, Checkout], object]] = {
    "checkout": SaleService.checkout,
    "checkout_recorded": SaleService.checkout_recorded,
    "checkout_async": lambda sale, command: asyncio.run(sale.checkout_async(command)),
    "checkout_recorded_async": lambda sale, command: asyncio.run(
        sale.checkout_recorded_async(command)
    ),
    "checkout_many": _many,
}


def _price_paid(store: EventStore, checkout_id: str) -> int:
    [event] = store.read_stream(checkout_stream(checkout_id))
    return event.decode(CheckedOut).lines[0].unit_price


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(
    ("fresh_for", "price"), [(1e9, 120), (0.0, 150)], ids=["cache-fresh", "cache-stale"]
)
def test_every_path_prices_by_the_same_catalog_rule(
    monkeypatch: pytest.MonkeyPatch, path: str, fresh_for: float, price: int
) -> None:
    monkeypatch.setattr("tillflow.shop.sale.service.CATALOG_FRESH_FOR", fresh_for)
    store = MemoryEventStore(registry=REGISTRY)
    till = SaleService(store)
    till.add_product(AddProduct("apple", "Apple", 120))
    till.checkout(Checkout("first", "till-1", [LineRequest("apple", 1)]))  # caches the catalog
    SaleService(store).reprice_product(RepriceProduct("apple", 150))  # another process
    PATHS[path](till, Checkout("second", "till-1", [LineRequest("apple", 1)]))
    assert _price_paid(store, "second") == price


def _answer(sale: SaleService, path: str, command: Checkout) -> object:
    """What ``path`` answers: a receipt (or receipt and checkout), or the refusal."""
    if path == "checkout_many":
        [outcome] = sale.checkout_many([command])
        return outcome
    try:
        return PATHS[path](sale, command)
    except TillflowError as refusal:
        return refusal


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_retry_after_its_product_was_discontinued_answers_the_original(path: str) -> None:
    store = MemoryEventStore(registry=REGISTRY)
    sale = SaleService(store)
    sale.add_product(AddProduct("apple", "Apple", 120))
    command = Checkout("first", "till-1", [LineRequest("apple", 2)])
    first = sale.checkout_recorded(command)
    sale.discontinue_product(DiscontinueProduct("apple"))
    answered = _answer(sale, path, command)
    expected = first if path.startswith("checkout_recorded") else first[0]
    assert answered == expected
    new = _answer(sale, path, Checkout("second", "till-1", [LineRequest("apple", 2)]))
    assert isinstance(new, ProductDiscontinued), "a new checkout must still be refused"
    other = _answer(sale, path, Checkout("first", "till-1", [LineRequest("apple", 3)]))
    assert isinstance(other, CheckoutConflict)
