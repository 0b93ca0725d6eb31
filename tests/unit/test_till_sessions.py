"""Till sessions on the sale side: open with a float, close with the counted cash, typed
refusals naming the till, keyed retries, unmanaged tills ringing up as before, and closed
tills refusing sales and returns."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from tillflow.engine import EventStore, MemoryEventStore, RecordedEvent
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CheckoutConflict, InvalidField
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream, till_stream
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.till_sessions import (
    CloseTill,
    OpenTill,
    TillAlreadyOpen,
    TillClosed,
    TillNotOpen,
    TillOpened,
)

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> EventStore:
    return MemoryEventStore(registry=REGISTRY)


@pytest.fixture
def sale(store: EventStore) -> SaleService:
    service = SaleService(store, clock=lambda: NOON)
    service.add_product(AddProduct("apple", "Apple", 120))
    return service


def _sell(sale: SaleService, checkout_id: str, till: str = "t1") -> CheckedOut:
    return sale.checkout_recorded(Checkout(checkout_id, till, [LineRequest("apple", 1)]))[1]


def test_open_and_close_record_on_the_tills_stream(store: EventStore, sale: SaleService) -> None:
    sale.tills.open(OpenTill("t1", 5000, "s1"))
    sale.tills.close(CloseTill("t1", 5120))
    opened, closed = store.read_stream(till_stream("t1"))
    assert opened.decode(TillOpened) == TillOpened("t1", "s1", 5000, NOON)
    assert closed.decode(TillClosed) == TillClosed("t1", "s1", 5120, NOON)


def test_a_sale_names_the_open_session_and_an_unmanaged_till_none(sale: SaleService) -> None:
    assert _sell(sale, "c-0", till="never-opened").session_id is None
    sale.tills.open(OpenTill("t1", 0, "s1"))
    assert _sell(sale, "c-1").session_id == "s1"


def test_a_closed_till_refuses_sales_and_returns_but_answers_retries(
    store: EventStore, sale: SaleService
) -> None:
    sale.tills.open(OpenTill("t1", 0, "s1"))
    _sell(sale, "c-1")
    sale.tills.close(CloseTill("t1", 120))
    before = store.heads()
    with pytest.raises(TillNotOpen) as refused:
        _sell(sale, "c-2")
    assert refused.value.till_id == "t1" and "'t1'" in str(refused.value)
    with pytest.raises(TillNotOpen):
        sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))
    assert store.heads() == before  # nothing written
    assert _sell(sale, "c-1").session_id == "s1"  # a retry of a recorded sale: its answer


def test_a_return_is_paid_by_the_checkouts_till_in_its_open_session(
    store: EventStore, sale: SaleService
) -> None:
    sale.tills.open(OpenTill("t1", 0, "s1"))
    _sell(sale, "c-1")
    sale.tills.close(CloseTill("t1", 120))
    sale.tills.open(OpenTill("t1", 0, "s2"))
    sale.return_items(ReturnItems("r-1", "c-1", [LineRequest("apple", 1)]))
    back = store.read_stream(checkout_stream("c-1"))[1].decode(ItemsReturned)
    assert (back.till_id, back.session_id) == ("t1", "s2")


def test_opening_an_open_till_and_closing_a_closed_one_are_refused(
    store: EventStore, sale: SaleService
) -> None:
    with pytest.raises(TillNotOpen):
        sale.tills.close(CloseTill("t1", 0))  # never opened
    sale.tills.open(OpenTill("t1", 100, "s1"))
    with pytest.raises(TillAlreadyOpen) as open_twice:
        sale.tills.open(OpenTill("t1", 100, "s2"))
    assert open_twice.value.open_session == "s1"
    sale.tills.close(CloseTill("t1", 100))
    with pytest.raises(TillNotOpen) as closed_twice:
        sale.tills.close(CloseTill("t1", 100))
    assert closed_twice.value.last == "s1"
    assert store.stream_version(till_stream("t1")) == 2


def test_retries_with_the_session_id_answer_the_first_receipt(sale: SaleService) -> None:
    opened = sale.tills.open(OpenTill("t1", 100, "s1"))
    assert sale.tills.open(OpenTill("t1", 100, "s1")) == opened
    with pytest.raises(CheckoutConflict) as other:
        sale.tills.open(OpenTill("t1", 200, "s1"))
    assert other.value.field == "float"
    closed = sale.tills.close(CloseTill("t1", 90, "s1"))
    assert sale.tills.close(CloseTill("t1", 90, "s1")) == closed
    with pytest.raises(CheckoutConflict) as recount:
        sale.tills.close(CloseTill("t1", 91, "s1"))
    assert recount.value.field == "counted"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (OpenTill("t1", -1), "float"),
        (OpenTill("t1", 1.5), "float"),  # type: ignore[arg-type]
        (OpenTill("bad id", 0), "till_id"),
        (OpenTill("t1", 0, ""), "session_id"),
        (CloseTill("t1", -5), "counted"),
        (CloseTill("t1", True), "counted"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    store: EventStore, sale: SaleService, command: OpenTill | CloseTill, field: str
) -> None:
    before = store.heads()
    with pytest.raises(InvalidField) as bad:
        if isinstance(command, OpenTill):
            sale.tills.open(command)
        else:
            sale.tills.close(command)
    assert bad.value.field == field
    assert store.heads() == before


def test_another_process_sees_the_till_closed_once_its_cache_ages(store: EventStore) -> None:
    here = SaleService(store, clock=lambda: NOON)
    there = SaleService(store, clock=lambda: NOON)
    here.add_product(AddProduct("apple", "Apple", 120))
    here.tills.open(OpenTill("t1", 0, "s1"))
    assert _sell(there, "c-1").session_id == "s1"
    here.tills.close(CloseTill("t1", 0))
    assert there.tills.state("t1").open_session is None  # a fresh read sees it at once
    with pytest.raises(TillNotOpen):
        _sell(there, "c-2")


class _GatedStore(MemoryEventStore):
    """A store whose next stream read, once armed, waits for ``release`` after reading."""

    def __init__(self) -> None:
        super().__init__(registry=REGISTRY)
        self.armed = False
        self.reading = threading.Event()
        self.release = threading.Event()

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        found = super().read_stream(stream, after_version, upto_version)
        if self.armed:
            self.armed = False
            self.reading.set()
            assert self.release.wait(timeout=60), "never released"
        return found


def test_a_read_begun_before_a_close_never_brings_the_open_state_back() -> None:
    store = _GatedStore()
    sale = SaleService(store, clock=lambda: NOON)
    sale.tills.open(OpenTill("t1", 0, "s1"))
    store.armed = True
    stale = threading.Thread(target=sale.tills.state, args=("t1",))
    stale.start()
    assert store.reading.wait(timeout=60)  # it has read the till open
    sale.tills.close(CloseTill("t1", 0))
    store.release.set()
    stale.join(timeout=60)
    assert not stale.is_alive()
    with pytest.raises(TillNotOpen):
        sale.tills.session_for("t1")
