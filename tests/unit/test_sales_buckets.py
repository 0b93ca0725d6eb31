"""Sales per hour and per day: the report counts each sale and return into its UTC quarter
hour with its rows and totals (one cut), and a reader groups the quarters into the hours or
days of any time zone — across midnight, a quarter-hour offset and both clock changes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from tillflow.engine import EventStore, MemoryEventStore
from tillflow.engine.store import BatchEffects
from tillflow.shop.assembly import REGISTRY, Shop, shop_processors
from tillflow.shop.errors import InvalidField
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.reporting.audit import ConsistentCutAudit
from tillflow.shop.reporting.projection import REPORT_VIEWS, ReportViews, reporting_processor
from tillflow.shop.reporting.sales import (
    SALES_VIEW,
    SalesDay,
    SalesFigures,
    quarter_of,
    quarter_of_text,
    read_since,
    sales_violations,
)
from tillflow.shop.reporting.sales_queries import SalesReader
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.tenders import Tender

PARIS = ZoneInfo("Europe/Paris")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Till:
    """A shop on the memory store; each call rings up and lets the processors catch up."""

    def __init__(self, shop: Shop | None = None) -> None:
        self.shop = shop or Shop(MemoryEventStore(registry=REGISTRY))
        self.shop.sale.add_product(AddProduct("wine", "Wine", 1200))  # 200 of it is VAT
        self.shop.sale.add_product(AddProduct("bread", "Bread", 210, tax_rate="reduced"))

    def run(self, *commands: Checkout | ReturnItems) -> None:
        async def go() -> None:
            async with self.shop.runtime() as runtime:
                for command in commands:
                    if isinstance(command, Checkout):
                        await self.shop.sale.checkout_async(command)
                    else:
                        await asyncio.to_thread(self.shop.sale.return_items, command)
                await runtime.drain(timeout=30)

        asyncio.run(go())

    def hours(self, day: date, zone: ZoneInfo) -> dict[str, SalesFigures]:
        cut = SalesReader(self.shop.store).hourly(day, zone)
        return {period.start.isoformat(): period.figures for period in cut.periods}


def sale(
    checkout_id: str, at: str, tenders: Sequence[Tender] | None = None, wine: int = 1
) -> Checkout:
    lines = [LineRequest("wine", wine)]
    return Checkout(checkout_id, "till-1", lines, _at(at), None if tenders is None else [*tenders])


def test_sales_land_in_their_hour_with_takings_by_tender_net_of_refunds() -> None:
    till = Till()
    till.run(
        sale("c-1", "2026-12-06T09:05:00+00:00", [Tender("cash", 5000)], wine=2),
        sale("c-2", "2026-12-06T09:59:59+00:00", [Tender("card", 1200, "tok-1")]),
        sale(
            "c-3",
            "2026-12-06T14:00:00+00:00",
            [Tender("card", 1000, "tok-2"), Tender("cash", 500)],
            wine=1,
        ),
        ReturnItems("r-1", "c-1", [LineRequest("wine", 1)], _at("2026-12-06T15:10:00+00:00")),
        ReturnItems("r-3", "c-3", [LineRequest("wine", 1)], _at("2026-12-06T15:20:00+00:00")),
    )
    hours = till.hours(date(2026, 12, 6), ZoneInfo("UTC"))
    assert len(hours) == 24
    nine = hours["2026-12-06T09:00:00+00:00"]
    assert nine == SalesFigures(
        checkouts=2, units_sold=3, sales=3600, tax=600, cash=2400, card=1200
    )  # cash: 5000 handed over, 2600 back as change
    assert hours["2026-12-06T14:00:00+00:00"] == SalesFigures(
        checkouts=1, units_sold=1, sales=1200, tax=200, cash=200, card=1000
    )
    three = hours["2026-12-06T15:00:00+00:00"]  # the card first, then cash
    assert three == SalesFigures(
        returns=2, units_returned=2, refunds=2400, tax=-400, cash=-1400, card=-1000
    )
    assert sum(f.checkouts for f in hours.values()) == 3
    totals = till.shop.report.totals()
    cut = SalesReader(till.shop.store).hourly(date(2026, 12, 6))
    assert (cut.total.revenue, cut.total.tax) == (totals.revenue, totals.tax) == (2400, 400)
    assert cut.total.cash + cut.total.card == cut.total.revenue
    assert cut.as_of == totals.as_of and cut.zone == "UTC"
    assert cut.freshness is not None and cut.freshness.lag_events == 0
    assert ConsistentCutAudit(REPORT_VIEWS)(till.shop.store) == []


def test_an_hour_belongs_to_the_days_of_the_shops_time_zone() -> None:
    till = Till()
    till.run(
        sale("late", "2026-12-05T23:30:00+00:00"),  # 00:30 on the 6th in Paris
        sale("edge-1", "2026-12-06T18:14:59+00:00"),  # 23:59:59 in Kathmandu
        sale("edge-2", "2026-12-06T18:15:00+00:00"),  # 00:00 on the 7th in Kathmandu
    )
    paris = till.hours(date(2026, 12, 6), PARIS)
    assert paris["2026-12-06T00:00:00+01:00"].checkouts == 1
    assert sum(f.checkouts for f in paris.values()) == 3
    utc = till.hours(date(2026, 12, 6), ZoneInfo("UTC"))
    assert sum(f.checkouts for f in utc.values()) == 2
    kathmandu = till.hours(date(2026, 12, 6), KATHMANDU)
    assert kathmandu["2026-12-06T23:00:00+05:45"].checkouts == 1
    assert sum(f.checkouts for f in kathmandu.values()) == 2  # "late" is 05:15 there
    assert till.hours(date(2026, 12, 7), KATHMANDU)["2026-12-07T00:00:00+05:45"].checkouts == 1
    reader = SalesReader(till.shop.store)
    days = reader.daily(date(2026, 12, 5), date(2026, 12, 7), PARIS).periods
    assert [(p.start.date().isoformat(), p.figures.checkouts) for p in days] == [
        ("2026-12-05", 0),
        ("2026-12-06", 3),
        ("2026-12-07", 0),
    ]
    days = reader.daily(date(2026, 12, 5), date(2026, 12, 7), KATHMANDU).periods
    assert [p.figures.checkouts for p in days] == [0, 2, 1]
    days = reader.daily(date(2026, 12, 5), date(2026, 12, 7)).periods
    assert [p.figures.checkouts for p in days] == [1, 2, 0]


def test_a_day_has_25_hours_when_the_clock_goes_back_and_23_when_it_goes_forward() -> None:
    till = Till()
    till.run(
        sale("first-two", "2026-10-25T00:30:00+00:00"),  # 02:30 summer time
        sale("second-two", "2026-10-25T01:30:00+00:00"),  # 02:30 winter time
    )
    autumn = till.hours(date(2026, 10, 25), PARIS)
    assert len(autumn) == 25
    assert autumn["2026-10-25T02:00:00+02:00"].checkouts == 1
    assert autumn["2026-10-25T02:00:00+01:00"].checkouts == 1
    spring = till.hours(date(2026, 3, 29), PARIS)
    assert len(spring) == 23
    assert "2026-03-29T02:00:00+01:00" not in spring


def test_a_daily_range_backwards_or_over_a_year_is_refused_naming_to() -> None:
    reader = SalesReader(MemoryEventStore(registry=REGISTRY))
    with pytest.raises(InvalidField) as backwards:
        reader.daily(date(2026, 12, 6), date(2026, 12, 5))
    assert (backwards.value.field, backwards.value.value) == ("to", "2026-12-05")
    with pytest.raises(InvalidField) as too_long:
        reader.daily(date(2026, 1, 1), date(2027, 1, 2))  # 367 days
    assert too_long.value.field == "to"
    assert len(reader.daily(date(2026, 1, 1), date(2026, 12, 31)).periods) == 365


def test_a_report_kept_before_the_buckets_starts_them_from_its_totals() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    before = ReportViews(REPORT_VIEWS.products, REPORT_VIEWS.totals, sales=None)
    old = Shop(store, processors=[inventory_processor(), reporting_processor(views=before)])
    till = Till(old)
    till.run(sale("old", "2026-12-01T10:00:00+00:00", wine=3))
    assert store.read_view(SALES_VIEW, "2026-12-01") is None
    till.shop = Shop(store, processors=shop_processors())
    till.run(sale("new", "2026-12-06T10:00:00+00:00"))
    assert read_since(store) == SalesFigures(
        checkouts=1, units_sold=3, sales=3600, tax=600, cash=3600
    )
    assert till.hours(date(2026, 12, 6), PARIS)["2026-12-06T11:00:00+01:00"].checkouts == 1
    assert ConsistentCutAudit(REPORT_VIEWS)(store) == []


def test_the_audit_catches_buckets_that_disagree_with_the_totals() -> None:
    till = Till()
    till.run(sale("c-1", "2026-12-06T10:00:00+00:00", [Tender("card", 1200, "tok")]))
    store = till.shop.store
    assert sales_violations(store, till.shop.report.totals()) == []
    raw = store.read_view(SALES_VIEW, "2026-12-06")
    assert raw is not None
    day = msgspec.json.decode(raw, type=SalesDay)
    day.quarters[41] = SalesFigures(checkouts=1, sales=100, cash=100)  # a sale counted twice
    _write_view(store, "2026-12-06", day)
    found = sales_violations(store, till.shop.report.totals())
    assert found == [
        "sales buckets add up to checkouts 2, totals say 1",
        "sales buckets add up to revenue 1300, totals say 1200",
    ]
    day.quarters[41] = SalesFigures(checkouts=0, sales=0, cash=5, card=-5)  # tenders moved
    _write_view(store, "2026-12-06", day)
    assert ConsistentCutAudit(REPORT_VIEWS)(store) == []
    day.quarters[41] = SalesFigures(cash=5)
    _write_view(store, "2026-12-06", day)
    assert ConsistentCutAudit(REPORT_VIEWS)(store) == [
        "sales 2026-12-06 quarter 41: tenders (cash 5 + card 0) and revenue 0 differ"
    ]


def _write_view(store: EventStore, key: str, day: SalesDay) -> None:
    """Write a bucket row as a broken projection would (a processor of its own)."""
    effects = BatchEffects()
    effects.views[(SALES_VIEW, key)] = msgspec.json.encode(day)
    store.commit_batch("tamper", 0, store.checkpoint("tamper", 0), store.head(0), effects)


@pytest.mark.parametrize(
    ("at", "quarter"),
    [
        ("2026-12-06T10:07:59.999Z", (date(2026, 12, 6), 40)),
        ("2026-12-06T10:15:00+00:00", (date(2026, 12, 6), 41)),
        ("2026-12-06T00:10:00+01:00", (date(2026, 12, 5), 92)),  # recorded with its offset
        ("2026-12-05T23:59:00-05:45", (date(2026, 12, 6), 22)),
    ],
)
def test_a_sale_counts_in_the_utc_quarter_of_its_time_however_written(
    at: str, quarter: tuple[date, int]
) -> None:
    assert quarter_of_text(at) == quarter
    assert quarter_of(datetime.fromisoformat(at)) == quarter
