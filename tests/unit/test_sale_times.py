"""Sale's ``at``: any date and time with a zone is kept in UTC or refused as ``InvalidField``
naming ``at`` and the value — even at the edges of the calendar, where the conversion to UTC
leaves years 1–9999 — and a refusal writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tillflow.engine import EventStore, MemoryEventStore, Receipt, TillflowError
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import InvalidField
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream
from tillflow.shop.sale.service import SaleService

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))
MINUS_FIVE = timezone(timedelta(hours=-5))
BEFORE_YEAR_ONE = datetime(1, 1, 1, 0, 30, tzinfo=PLUS_ONE)
AFTER_YEAR_9999 = datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_FIVE)
LINES = [LineRequest("apple", 1)]


def _shop() -> tuple[EventStore, SaleService]:
    store = MemoryEventStore(registry=REGISTRY)
    sale = SaleService(store, clock=lambda: NOON)
    sale.add_product(AddProduct("apple", "Apple", 120))
    sale.checkout(Checkout("bought", "till-1", [LineRequest("apple", 5)]))
    return store, sale


def _checkout(sale: SaleService, at: datetime) -> Receipt:
    return sale.checkout(Checkout("c-1", "till-1", LINES, at))


def _checkout_async(sale: SaleService, at: datetime) -> Receipt:
    return asyncio.run(sale.checkout_async(Checkout("c-1", "till-1", LINES, at)))


def _checkout_many(sale: SaleService, at: datetime) -> Receipt:
    [outcome] = sale.checkout_many([Checkout("c-1", "till-1", LINES, at)])
    if isinstance(outcome, TillflowError):
        raise outcome
    return outcome


def _return_items(sale: SaleService, at: datetime) -> Receipt:
    return sale.return_items(ReturnItems("r-1", "bought", LINES, at))


PATHS: dict[str, Callable[[SaleService, datetime], Receipt]] = {
    "checkout": _checkout,
    "checkout_async": _checkout_async,
    "checkout_many": _checkout_many,
    "return_items": _return_items,
}


def _recorded_at(store: EventStore, path: str) -> datetime:
    if path == "return_items":
        [returned] = store.read_stream(checkout_stream("bought"), after_version=1)
        return returned.decode(ItemsReturned).at
    [checked_out] = store.read_stream(checkout_stream("c-1"))
    return checked_out.decode(CheckedOut).at


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("at", [BEFORE_YEAR_ONE, AFTER_YEAR_9999], ids=["year-0", "year-10000"])
def test_a_time_outside_the_calendar_once_in_utc_is_refused_naming_at_and_writes_nothing(
    path: str, at: datetime
) -> None:
    store, sale = _shop()
    heads = store.heads()
    with pytest.raises(InvalidField) as caught:
        PATHS[path](sale, at)
    assert caught.value.field == "at"
    assert caught.value.value == at.isoformat()
    assert "out of range once in UTC" in caught.value.reason
    assert str(caught.value).startswith(f"at={at.isoformat()!r}: ")
    assert store.heads() == heads


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(
    "at",
    [datetime(1, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)],
    ids=["first-instant", "last-instant"],
)
def test_the_calendars_edges_in_utc_are_recorded(path: str, at: datetime) -> None:
    store, sale = _shop()
    PATHS[path](sale, at)
    assert _recorded_at(store, path) == at


class _NoOffset(tzinfo):
    """A zone that does not know its offset: the time is as naive as without one."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


class _DayLongOffset(tzinfo):
    """A zone whose offset Python refuses (a whole day or more)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return timedelta(hours=25)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return "day-long"


class _OverflowingOffset(tzinfo):
    """A zone whose offset cannot be computed (its arithmetic overflows)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return timedelta(days=10**9)  # OverflowError: days beyond what timedelta holds

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return "overflowing"


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(
    "zone",
    [_NoOffset(), _DayLongOffset(), _OverflowingOffset()],
    ids=["no-offset", "bad-offset", "overflowing-offset"],
)
def test_a_zone_without_a_valid_offset_is_refused_naming_at(zone: tzinfo, path: str) -> None:
    store, sale = _shop()
    heads = store.heads()
    with pytest.raises(InvalidField) as caught:
        PATHS[path](sale, datetime(2026, 1, 1, 12, tzinfo=zone))
    assert caught.value.field == "at"
    assert caught.value.value == "2026-01-01T12:00:00"
    assert store.heads() == heads


fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
extreme_times = st.one_of(
    st.datetimes(timezones=st.one_of(fixed_offsets, st.timezones())),
    st.datetimes(max_value=datetime(1, 1, 2), timezones=st.one_of(fixed_offsets, st.timezones())),
    st.datetimes(
        min_value=datetime(9999, 12, 30), timezones=st.one_of(fixed_offsets, st.timezones())
    ),
)


def _in_utc(at: datetime) -> datetime | None:
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return None


@settings(max_examples=150, deadline=None)
@given(at=extreme_times, path=st.sampled_from(sorted(PATHS)))
def test_any_zoned_time_gives_a_receipt_in_utc_or_a_typed_refusal_and_nothing_half_written(
    at: datetime, path: str
) -> None:
    store, sale = _shop()
    heads = store.heads()
    expected = _in_utc(at)
    try:
        receipt = PATHS[path](sale, at)
    except TillflowError as refusal:
        assert expected is None, f"{at!r} has a UTC time {expected!r} but was refused: {refusal}"
        assert isinstance(refusal, InvalidField)
        assert refusal.field == "at"
        assert store.heads() == heads
        return
    assert expected is not None, f"{at!r} has no UTC time but was recorded"
    assert store.heads() != heads
    assert set(receipt.streams) == {checkout_stream("bought" if path == "return_items" else "c-1")}
    recorded = _recorded_at(store, path)
    assert recorded.utcoffset() == timedelta(0)
    assert recorded == expected
