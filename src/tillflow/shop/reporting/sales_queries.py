"""Reading sales per hour and per day in the shop's time zone, as of one cut of the report.

The report keeps figures per UTC quarter hour (:mod:`~tillflow.shop.reporting.sales`);
a local hour or day is the quarters that begin in it. An hour is named by its start in
the zone with its offset, so the hour a clock change repeats appears twice
(``01:00+02:00`` and ``01:00+01:00``) and the one it skips not at all: a day has 23, 24 or
25 hours. Every hour (or day) of the range is listed, with zeros where nothing was sold.
Buckets, totals and freshness are read in one snapshot: they are the same cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

import msgspec

from tillflow.engine import EventStore
from tillflow.engine.versions import versioned
from tillflow.shop.errors import InvalidField
from tillflow.shop.reporting.queries import Freshness, ReportReader
from tillflow.shop.reporting.rows import AsOf
from tillflow.shop.reporting.sales import (
    QUARTER,
    SALES_VIEW,
    SalesDay,
    SalesFigures,
    quarter_of,
    summed,
)

MOST_DAYS: Final = 366
"""The longest range :meth:`SalesReader.daily` reads."""


@dataclass(frozen=True)
class Period:
    """One hour or day: its start in the shop's zone (aware) and what was sold in it."""

    start: datetime
    figures: SalesFigures


@dataclass(frozen=True)
class SalesCut:
    """Periods in order, their sum, and what they are true as of: the report's totals'
    ``as_of`` (its last handled event) and its freshness, read together with them
    (``None`` when not asked for)."""

    periods: list[Period]
    zone: str
    as_of: AsOf
    freshness: Freshness | None

    @property
    def total(self) -> SalesFigures:
        return summed(period.figures for period in self.periods)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """When ``day`` begins in ``zone``, in UTC (a day begins at its first instant whose
    local date is ``day``)."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def _quarters(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC quarter starts in [start, end)."""
    day, quarter = quarter_of(start)
    at = datetime.combine(day, time(0), UTC) + quarter * QUARTER
    if at < start:
        at += QUARTER
    while at < end:
        yield at
        at += QUARTER


def _hour_of(at: datetime, zone: tzinfo) -> datetime:
    """The local hour ``at`` falls in (aware, with the offset it has then)."""
    local = at.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0)


class SalesReader:
    """Sales per hour or day from the report's buckets, in a time zone."""

    def __init__(self, store: EventStore, view: str = SALES_VIEW) -> None:
        self.store = store
        self.view = view
        self.report = ReportReader(store)

    def hourly(self, day: date, zone: tzinfo = UTC, fresh: bool = True) -> SalesCut:
        """Every hour of ``day`` in ``zone`` (23 to 25), with its sales; ``fresh``: with
        the report's freshness (a few more reads)."""
        start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
        hours: dict[tuple[datetime, int], SalesFigures] = {}
        keys = []
        for at in _quarters(start, end):
            hour = _hour_of(at, zone)
            key = (hour, hour.fold)
            if key not in hours:
                hours[key] = SalesFigures()
                keys.append(key)
        with self.store.snapshot():
            days, as_of, freshness = self._read(start, end, fresh)
        for at, figures in self._buckets(days, start, end):
            hour = _hour_of(at, zone)
            hours[(hour, hour.fold)].add(figures)
        periods = [Period(hour, hours[(hour, fold)]) for hour, fold in keys]
        return SalesCut(periods, str(zone), as_of, freshness)

    def daily(self, first: date, last: date, zone: tzinfo = UTC) -> SalesCut:
        """Every day from ``first`` to ``last`` (both included) in ``zone``. Raises
        :class:`InvalidField` naming ``to`` when ``last`` is before ``first`` or more than
        :data:`MOST_DAYS` days of range."""
        if last < first:
            raise InvalidField("to", last.isoformat(), f"is before from={first.isoformat()}")
        if (last - first).days + 1 > MOST_DAYS:
            raise InvalidField("to", last.isoformat(), f"more than {MOST_DAYS} days after from")
        start = local_midnight(first, zone)
        end = local_midnight(last + timedelta(days=1), zone)
        days_of: dict[date, SalesFigures] = {}
        for offset in range((last - first).days + 1):
            days_of[first + timedelta(days=offset)] = SalesFigures()
        with self.store.snapshot():
            days, as_of, freshness = self._read(start, end, True)
        for at, figures in self._buckets(days, start, end):
            days_of[at.astimezone(zone).date()].add(figures)
        periods = [
            Period(datetime.combine(day, time(0), zone), figures)
            for day, figures in days_of.items()
        ]
        return SalesCut(periods, str(zone), as_of, freshness)

    def _read(
        self, start: datetime, end: datetime, fresh: bool
    ) -> tuple[dict[date, SalesDay], AsOf, Freshness | None]:
        """The UTC dates that cover [start, end), the totals' as-of, the freshness (call
        inside a snapshot)."""
        decoder = msgspec.json.Decoder(SalesDay)
        version = self.report.version()
        view = versioned(self.view, version)
        days = {}
        day = start.date()
        while day <= (end - QUARTER).date():
            raw = self.store.read_view(view, day.isoformat())
            if raw is not None:
                days[day] = decoder.decode(raw)
            day += timedelta(days=1)
        freshness = self.report.freshness(version=version) if fresh else None
        return days, self.report.totals(version).as_of, freshness

    @staticmethod
    def _buckets(
        days: dict[date, SalesDay], start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, SalesFigures]]:
        """The quarters in ``days`` that begin in [start, end), with their start."""
        for day, row in days.items():
            midnight = datetime.combine(day, time(0), UTC)
            for quarter, figures in row.quarters.items():
                at = midnight + quarter * QUARTER
                if start <= at < end:
                    yield at, figures
