"""When every attempt of a guarded append loses its race, the retry loops of the sale
service and of the token book give up with the last real :class:`ConcurrencyConflict`
the store raised — the stream, the version expected and the version found — never a
placeholder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from tillflow.engine import (
    ANY_VERSION,
    ConcurrencyConflict,
    MemoryEventStore,
    NewEvent,
    Receipt,
)
from tillflow.service.access_tokens import TOKENS_STREAM, Role, TokenBook, TokenCreated
from tillflow.service.bootstrap import service_registry
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    LineRequest,
    RenameProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import (
    CATALOG_STREAM,
    ItemsReturned,
    ProductRenamed,
    checkout_stream,
)
from tillflow.shop.sale.service import CATALOG_RETRIES, SaleService

NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class AlwaysOvertaken(MemoryEventStore):
    """A store where, once ``contested`` is set, another writer appends to that stream just
    before each guarded append to it: every such append meets a real conflict. Keeps
    every conflict it raised, in order."""

    def __init__(self) -> None:
        super().__init__(registry=service_registry())
        self.contested: str | None = None
        self.rival = 0
        self.raised: list[ConcurrencyConflict] = []

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        if stream == self.contested and expected_version != ANY_VERSION:
            self.rival += 1
            super().append(stream, [_rival_event(stream, self.rival)], ANY_VERSION)
            try:
                return super().append(stream, events, expected_version)
            except ConcurrencyConflict as conflict:
                self.raised.append(conflict)
                raise
        return super().append(stream, events, expected_version)


def _rival_event(stream: str, number: int) -> NewEvent:
    """An event another writer could have appended to ``stream``."""
    if stream == CATALOG_STREAM:
        return NewEvent("ProductRenamed", ProductRenamed("apple", f"Apple {number}"))
    if stream == TOKENS_STREAM:
        return NewEvent("TokenCreated", TokenCreated(f"rival-{number}", "viewer", "x" * 64, NOON))
    checkout_id = stream.removeprefix("checkout-")
    return NewEvent("ItemsReturned", ItemsReturned(f"rival-{number}", checkout_id, NOON, [], 0))


def _assert_the_last_real_conflict(store: AlwaysOvertaken, caught: ConcurrencyConflict) -> None:
    assert len(store.raised) == CATALOG_RETRIES
    assert caught is store.raised[-1]
    assert caught.stream == store.contested
    assert caught.expected >= 1
    assert caught.actual == caught.expected + 1  # the rival's event, one version on


@pytest.fixture
def store() -> AlwaysOvertaken:
    return AlwaysOvertaken()


@pytest.fixture
def sale(store: AlwaysOvertaken) -> SaleService:
    sale = SaleService(store, clock=lambda: NOON)
    sale.add_product(AddProduct("apple", "Apple", 120))
    sale.checkout(Checkout("c-1", "till-1", [LineRequest("apple", 2)]))
    return sale


def test_a_catalog_change_that_always_loses_raises_the_last_real_conflict(
    store: AlwaysOvertaken, sale: SaleService
) -> None:
    store.contested = CATALOG_STREAM
    with pytest.raises(ConcurrencyConflict) as caught:
        sale.rename_product(RenameProduct("apple", "Green apple"))
    _assert_the_last_real_conflict(store, caught.value)


def test_a_return_that_always_loses_raises_the_last_real_conflict(
    store: AlwaysOvertaken, sale: SaleService
) -> None:
    store.contested = checkout_stream("c-1")
    with pytest.raises(ConcurrencyConflict) as caught:
        sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))
    _assert_the_last_real_conflict(store, caught.value)


@pytest.mark.parametrize("action", ["create", "revoke"])
def test_a_token_change_that_always_loses_raises_the_last_real_conflict(
    store: AlwaysOvertaken, action: str
) -> None:
    book = TokenBook(store, clock=lambda: NOON)
    book.create("alice", Role.MANAGER)
    store.contested = TOKENS_STREAM
    with pytest.raises(ConcurrencyConflict) as caught:
        if action == "create":
            book.create("bob", Role.TILL)
        else:
            book.revoke("alice")
    _assert_the_last_real_conflict(store, caught.value)
