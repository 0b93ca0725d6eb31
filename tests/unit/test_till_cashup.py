"""The cash-up processor: per session takings by tender (cash kept = handed − change), refunds
by tender, declines, expected cash = float + cash kept − cash refunded, the difference at
close; the Z report never changes after it (a sale rung up during the close is kept apart as
late); unmanaged sales count outside any session; every sale lands in its session whatever
order the lanes are handled in."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from tillflow.engine import LaneProcessor, MemoryEventStore, NewEvent
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import CardDeclined
from tillflow.shop.sale import tills
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import ItemsReturned, checkout_stream
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import CARD, CASH, Tender
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill
from tillflow.shop.tills.projection import tills_processor
from tillflow.shop.tills.queries import TillReader, UnknownSession
from tillflow.shop.tills.rows import Takings

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Till:
    """A shop whose cash-up moves only when the test runs it."""

    def __init__(self, lanes: int = 1) -> None:
        self.store = MemoryEventStore(lane_count=lanes, registry=REGISTRY)
        self.sale = SaleService(
            self.store, clock=lambda: NOON, terminal=SimulatedTerminal(decline_cards={"broke"})
        )
        self.sale.add_product(AddProduct("wine", "Wine", 1000))
        self.lanes = [LaneProcessor(self.store, tills_processor(), n) for n in range(lanes)]
        self.reader = TillReader(self.store)

    def run(self, order: list[int] | None = None) -> None:
        for lane in order if order is not None else range(len(self.lanes)):
            while self.lanes[lane].step().progressed:
                pass

    def sell(self, checkout_id: str, units: int, *tenders: Tender, till: str = "t1") -> None:
        lines = [LineRequest("wine", units)]
        self.sale.checkout(Checkout(checkout_id, till, lines, tenders=list(tenders) or None))


def _day(shop: Till) -> None:
    shop.sale.tills.open(OpenTill("t1", 10_000, "s1"))
    shop.sell("c-1", 1, Tender(CASH, 2000))  # 1000 kept, 1000 change
    shop.sell("c-2", 3, Tender(CARD, 3000, "tok-a"))
    shop.sell("c-3", 2, Tender(CARD, 500, "tok-b"), Tender(CASH, 1500))  # 1500 kept, 0 change
    with pytest.raises(CardDeclined):
        shop.sell("c-4", 1, Tender(CARD, 1000, "broke"))
    shop.sell("c-4", 1, Tender(CASH, 1000))  # the declined basket settled in cash
    shop.sale.return_items(ReturnItems("r-1", "c-2", [LineRequest("wine", 1)]))  # card
    shop.sale.return_items(ReturnItems("r-2", "c-3", [LineRequest("wine", 1)]))  # 500 + 500


def test_takings_refunds_and_expected_cash_of_an_open_session() -> None:
    shop = Till()
    _day(shop)
    shop.run()
    report = shop.reader.x_report("t1")
    assert report.session is not None and not report.final
    assert report.session.takings == Takings(
        sales=4,
        returns=2,
        declines=1,
        cash=1000 + 1500 + 1000,
        card=3000 + 500,
        cash_handed=2000 + 1500 + 1000,
        change=1000,
        cash_refunds=500,
        card_refunds=1000 + 500,
    )
    assert report.session.expected_cash == 10_000 + 3500 - 500
    assert report.session.difference is None
    with pytest.raises(UnknownSession):
        shop.reader.z_report("t1", "s1")  # still open


def test_the_z_report_has_the_difference_and_never_changes_after_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = Till()
    _day(shop)
    there = SaleService(shop.store, clock=lambda: NOON)  # another process at the same till
    monkeypatch.setattr(tills, "TILL_FRESH_FOR", 3600.0)  # its cached state stays "open"
    there.checkout(Checkout("c-5", "t1", [LineRequest("wine", 1)]))
    shop.sale.tills.close(CloseTill("t1", 13_950))
    shop.run()
    z = shop.reader.z_report("t1", "s1").session
    assert z is not None and z.counted == 13_950 and z.closed_as_of is not None
    assert z.expected_cash == 10_000 + 3500 + 1000 - 500
    assert z.difference == 13_950 - 14_000
    assert shop.reader.x_report("t1").session is None  # no session open
    there.checkout(Checkout("c-late", "t1", [LineRequest("wine", 1)]))  # rung up in the close
    shop.run()
    after = shop.reader.z_report("t1", "s1").session
    assert after is not None
    assert after.takings == z.takings and after.difference == z.difference
    assert (after.late.sales, after.late.cash) == (1, 1000)


def test_an_unmanaged_tills_sales_count_outside_any_session() -> None:
    shop = Till()
    shop.sell("c-1", 1, Tender(CASH, 1500), till="t9")
    shop.run()
    report = shop.reader.x_report("t9")
    assert report.session is None and report.till.open_session is None
    assert (report.till.outside.sales, report.till.outside.cash) == (1, 1000)
    assert report.till.outside.change == 500


def _plus(one: Takings, other: Takings) -> dict[str, int]:
    mine, theirs = msgspec.structs.asdict(one), msgspec.structs.asdict(other)
    return {name: mine[name] + theirs[name] for name in mine}


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 0, 2]])
def test_every_sale_lands_in_its_session_whatever_order_lanes_are_handled_in(
    order: list[int],
) -> None:
    shop = Till(lanes=3)
    _day(shop)
    shop.sale.tills.close(CloseTill("t1", 13_000))
    shop.run(order)
    one = Till()
    _day(one)
    one.sale.tills.close(CloseTill("t1", 13_000))
    one.run()
    found, expected = shop.reader.session("t1", "s1"), one.reader.session("t1", "s1")
    assert found is not None and expected is not None
    assert _plus(found.takings, found.late) == _plus(expected.takings, Takings())
    assert (found.float, found.counted) == (expected.float, expected.counted)


def test_a_return_recorded_before_till_sessions_counts_at_the_checkouts_till() -> None:
    shop = Till()
    shop.sell("c-1", 2, till="t7")  # the exact total in cash: 2000
    old = ItemsReturned("r-old", "c-1", NOON, [], 1000)  # no till, no refunds: cash
    shop.store.append(checkout_stream("c-1"), [NewEvent("ItemsReturned", old)])
    shop.run()
    outside = shop.reader.x_report("t7").till.outside
    assert (outside.sales, outside.cash, outside.returns, outside.cash_refunds) == (
        1,
        2000,
        1,
        1000,
    )
