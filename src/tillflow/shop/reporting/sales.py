"""Sales over time, kept by the report's processor: figures per quarter of an hour (UTC).

The report counts every ``CheckedOut`` and ``ItemsReturned`` it handles into the quarter
hour of the sale's (or return's) ``at``, in the same batch as its rows and totals — so the
buckets are a cut as of the same position as the report, and their sums are the totals.
One view row per UTC date (``report.sales``, key ``2026-12-06``) holds that day's quarters::

    CheckedOut(at=14:07Z, total, lines, tenders) ──► report.sales["…-06"].quarters[56]
                                                     checkouts, units, sales, tax, cash, card

Quarters, not hours, because every time zone in use is a whole number of quarter hours
from UTC: a reader (:mod:`~tillflow.shop.reporting.sales_queries`) groups them into hours
or days of any zone, and the zone can change without rebuilding anything.

A report kept before these buckets existed has earlier sales in its totals only; the row
``since`` records the totals as they stood when the buckets began (zeros for a new shop),
so ``since + Σ buckets == totals`` always holds (:func:`sales_violations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final

import msgspec

from tillflow.engine import EventStore, RecordedEvent, Session
from tillflow.engine.log_tail import LastAnswer, LogTail, passed_by
from tillflow.shop.reporting.rows import Totals
from tillflow.shop.sale import tenders
from tillflow.shop.sale.tenders import PaidTender, RefundTender

SALES_VIEW: Final = "report.sales"
SINCE_KEY: Final = "since"
QUARTER: Final = timedelta(minutes=15)
QUARTERS_PER_DAY: Final = 96


class SalesFigures(msgspec.Struct, array_like=True):
    """Sales in one period, in integer cents. ``sales``: what checkouts were paid (tax
    included); ``refunds``: what returns paid back; ``tax``: the tax in sales − refunds;
    ``cash`` / ``card``: takings by tender net of refunds to it (cash handed over beyond
    the total went back as change and is not counted). ``cash + card == revenue``."""

    checkouts: int = 0
    returns: int = 0
    units_sold: int = 0
    units_returned: int = 0
    sales: int = 0
    refunds: int = 0
    tax: int = 0
    cash: int = 0
    card: int = 0

    @property
    def revenue(self) -> int:
        """Sales − refunds, tax included (the report's ``revenue``)."""
        return self.sales - self.refunds

    @property
    def net(self) -> int:
        """Revenue without its tax."""
        return self.revenue - self.tax

    def add(self, other: SalesFigures) -> None:
        """Add ``other``'s figures to these."""
        self.checkouts += other.checkouts
        self.returns += other.returns
        self.units_sold += other.units_sold
        self.units_returned += other.units_returned
        self.sales += other.sales
        self.refunds += other.refunds
        self.tax += other.tax
        self.cash += other.cash
        self.card += other.card


class SalesDay(msgspec.Struct):
    """One UTC date: figures per quarter of an hour (0 = 00:00–00:15 UTC), only those with
    a sale or a return."""

    quarters: dict[int, SalesFigures] = msgspec.field(default_factory=dict)


class _Line(msgspec.Struct):
    quantity: int
    tax: int = 0


class _Sale(msgspec.Struct):
    """What the buckets need of a ``CheckedOut`` (decoded without the rest); ``at`` as
    written, ISO 8601 (:func:`quarter_of_text` reads it)."""

    at: str
    total: int
    lines: list[_Line]
    tenders: list[PaidTender] = msgspec.field(default_factory=list)


class _Return(msgspec.Struct):
    """What the buckets need of an ``ItemsReturned``."""

    at: str
    refund_total: int
    lines: list[_Line]
    refunds: list[RefundTender] = msgspec.field(default_factory=list)


_SALE = msgspec.json.Decoder(_Sale)
_RETURN = msgspec.json.Decoder(_Return)


def quarter_of(at: datetime) -> tuple[date, int]:
    """The UTC date and the quarter of that date ``at`` falls in."""
    utc = at.astimezone(UTC)
    return utc.date(), utc.hour * 4 + utc.minute // 15


def quarter_of_text(at: str) -> tuple[date, int]:
    """:func:`quarter_of` an ISO 8601 time as events record it: read off the text when it
    is in UTC (what the shop records), parsed otherwise."""
    if at.endswith(("+00:00", "Z")) and at[10:11] == "T":
        return _utc_quarter(at[:16])
    return quarter_of(datetime.fromisoformat(at))


@lru_cache(maxsize=256)
def _utc_quarter(minute: str) -> tuple[date, int]:
    """The quarter of ``YYYY-MM-DDTHH:MM`` in UTC (remembered: sales come minute by minute)."""
    return date.fromisoformat(minute[:10]), int(minute[11:13]) * 4 + int(minute[14:16]) // 15


def quarter_start(day: date, quarter: int) -> datetime:
    """When quarter ``quarter`` of UTC date ``day`` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + quarter * QUARTER


def sale_of(event: RecordedEvent) -> _Sale | _Return:
    """What the buckets need of a ``CheckedOut`` or an ``ItemsReturned`` (its quarter is
    ``quarter_of_text(sale_of(event).at)``)."""
    return _SALE.decode(event.data) if event.type == "CheckedOut" else _RETURN.decode(event.data)


def count_in(figures: SalesFigures, sale: _Sale | _Return) -> None:
    """Add a sale's or a return's figures, whole, to ``figures`` (its quarter's)."""
    units = tax = 0
    if isinstance(sale, _Sale):
        for line in sale.lines:
            units += line.quantity
            tax += line.tax
        figures.checkouts += 1
        figures.units_sold += units
        figures.sales += sale.total
        figures.tax += tax
        for paid in tenders.paid_with(sale.total, sale.tenders):
            if paid.type == tenders.CASH:
                figures.cash += paid.amount
            elif paid.type == tenders.CARD:
                figures.card += paid.amount
        return
    for line in sale.lines:
        units += line.quantity
        tax += line.tax
    figures.returns += 1
    figures.units_returned += units
    figures.refunds += sale.refund_total
    figures.tax -= tax
    for refund in tenders.refunded_with(sale.refund_total, sale.refunds):
        if refund.type == tenders.CASH:
            figures.cash -= refund.amount
        elif refund.type == tenders.CARD:
            figures.card -= refund.amount


def since_figures(totals: Totals) -> SalesFigures:
    """What ``totals`` hold, as sales figures (tenders unknown: all counted as cash)."""
    return SalesFigures(
        checkouts=totals.checkouts,
        returns=totals.returns,
        units_sold=totals.units_sold,
        units_returned=totals.units_returned,
        sales=totals.revenue,
        tax=totals.tax,
        cash=totals.revenue,
    )


def count_sale(session: Session, view: str, event: RecordedEvent, before: Totals) -> None:
    """Count ``event`` (a ``CheckedOut`` or ``ItemsReturned``) into its quarter of ``view``.
    ``before``: the report's totals before the event (kept as ``since`` the first time)."""
    marker = ("sales-since", view)
    if marker not in session.scratch:
        if session.get(view, SINCE_KEY) is None:  # the first sale since buckets began
            counted = before.checkouts or before.returns
            session.put(view, SINCE_KEY, since_figures(before) if counted else SalesFigures())
        session.scratch[marker] = True
    sale = sale_of(event)
    day, quarter = quarter_of_text(sale.at)
    key = day.isoformat()
    found: SalesDay | None = session.get(view, key, SalesDay)
    row = found if found is not None else SalesDay()
    bucket = row.quarters.get(quarter)
    if bucket is None:
        bucket = row.quarters[quarter] = SalesFigures()
    count_in(bucket, sale)  # into the bucket itself: no figures of its own made per sale
    session.put(view, key, row)


def read_since(store: EventStore, view: str = SALES_VIEW) -> SalesFigures:
    """The totals the buckets began from (zeros if none)."""
    raw = store.read_view(view, SINCE_KEY)
    return SalesFigures() if raw is None else msgspec.json.decode(raw, type=SalesFigures)


def read_days(store: EventStore, view: str = SALES_VIEW) -> dict[date, SalesDay]:
    """Every UTC date with sales, with its quarters."""
    decoder = msgspec.json.Decoder(SalesDay)
    return {
        date.fromisoformat(key): decoder.decode(raw)
        for key, raw in store.view_rows(view)
        if key != SINCE_KEY
    }


def summed(parts: Iterable[SalesFigures]) -> SalesFigures:
    """The sum of ``parts``."""
    total = SalesFigures()
    for part in parts:
        total.add(part)
    return total


def sales_violations(store: EventStore, totals: Totals, view: str = SALES_VIEW) -> list[str]:
    """How the buckets disagree with the report's ``totals`` read in the same snapshot:
    each bucket's tenders must give its revenue, and ``since`` + the buckets the totals'
    checkouts and returns (both counted as the report handles a sale). On one lane the
    revenue, tax and units must agree too; on several, the totals take a sale's lines when
    Inventory's stream of the product reaches them, which may come before the report has
    handled the sale on its own lane (:class:`SalesAudit` checks the buckets there)."""
    found = []
    buckets = [
        (day, quarter, figures)
        for day, row in sorted(read_days(store, view).items())
        for quarter, figures in sorted(row.quarters.items())
    ]
    for day, quarter, figures in buckets:
        if figures.cash + figures.card != figures.revenue:
            found.append(
                f"sales {day} quarter {quarter}: tenders (cash {figures.cash} + card "
                f"{figures.card}) and revenue {figures.revenue} differ"
            )
    all_of = summed([read_since(store, view), *(figures for _, _, figures in buckets)])
    pairs = {
        "checkouts": (all_of.checkouts, totals.checkouts),
        "returns": (all_of.returns, totals.returns),
    }
    if store.lane_count == 1:
        pairs |= {
            "units_sold": (all_of.units_sold, totals.units_sold),
            "units_returned": (all_of.units_returned, totals.units_returned),
            "revenue": (all_of.revenue, totals.revenue),
            "tax": (all_of.tax, totals.tax),
        }
    for name, (buckets_say, totals_say) in pairs.items():
        if buckets_say != totals_say:
            found.append(f"sales buckets add up to {name} {buckets_say}, totals say {totals_say}")
    return found


class SalesAudit:
    """The buckets against the log: every quarter holds exactly the sales and returns at
    or before the report's checkpoint on each lane, whatever the lanes (a shop whose
    buckets began after its report, ``since`` not zero, is not checked)."""

    def __init__(self, processor: str, view: str = SALES_VIEW) -> None:
        self.processor = processor
        self.view = view
        self.passed = LogTail(("CheckedOut", "ItemsReturned"))
        self.truth: dict[tuple[date, int], SalesFigures] = {}
        """Per quarter, the sales the report passed (each read once, as it passes them)."""
        self.last = LastAnswer()

    def __call__(self, store: EventStore) -> list[str]:
        with store.snapshot():
            upto = passed_by(store, self.processor)
            rows = list(store.view_rows(self.view))
            return self.last.of((store, upto, rows), lambda: self._audit(store, upto))

    def _audit(self, store: EventStore, upto: dict[int, int]) -> list[str]:
        """(In the caller's snapshot.)"""
        if read_since(store, self.view) != SalesFigures():
            return []
        restarted, events = self.passed.advance(store, upto)
        if restarted:
            self.truth = {}
        truth = self.truth
        for event in events:
            sale = sale_of(event)
            count_in(truth.setdefault(quarter_of_text(sale.at), SalesFigures()), sale)
        kept = {
            (day, quarter): figures
            for day, row in read_days(store, self.view).items()
            for quarter, figures in row.quarters.items()
        }
        return [
            f"sales {day} quarter {quarter}: buckets {kept.get((day, quarter))}, the sales "
            f"the report passed {truth.get((day, quarter))}"
            for day, quarter in sorted(set(truth) | set(kept))
            if kept.get((day, quarter)) != truth.get((day, quarter))
        ]
