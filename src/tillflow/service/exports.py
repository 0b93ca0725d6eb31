"""CSV exports of the report and of sales per hour or day: one format for HTTP and the CLI.

RFC 4180: comma-separated, a header row, CRLF line ends, a field quoted (``"``, doubled
inside) when it holds a comma, a quote or a line break (Python's :mod:`csv`). Money is a
decimal string with two places, ``.`` as the separator, no grouping, ``-`` when negative
(``1234.50``, ``-0.05``): integer cents, never a float on the way. Times are ISO 8601:
*as of* times in UTC (``2026-12-06T14:07:31.250000+00:00``), an hour with the offset of
the shop's time zone it is in.

* :func:`report_csv` — a row per product with its own *as of* (lane, position, Inventory
  version, time): the figures of a row describe that moment.
* :func:`totals_csv` — the totals apart (so the product rows can be summed without
  counting them twice): a ``total`` row, then a ``rate`` row per VAT rate and size; every
  row with the totals' *as of*.
* :func:`sales_csv` — a row per hour (or day) of a :class:`SalesCut`, every row with the
  cut's *as of*.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from tillflow.shop.inventory.stock import is_low
from tillflow.shop.reporting.queries import Report
from tillflow.shop.reporting.rows import AsOf
from tillflow.shop.reporting.sales_queries import SalesCut

MEDIA_TYPE: Final = "text/csv; charset=utf-8; header=present"

REPORT_COLUMNS: Final = (
    "product_id",
    "name",
    "price",
    "tax_rate",
    "discontinued",
    "units_sold",
    "units_returned",
    "revenue",
    "tax",
    "net",
    "received",
    "count_adjustments",
    "stock_left",
    "open_shortfall",
    "units_oversold",
    "reorder_point",
    "low",
    "as_of_lane",
    "as_of_position",
    "as_of_version",
    "as_of_time",
)
TOTALS_COLUMNS: Final = (
    "scope",
    "rate",
    "basis_points",
    "revenue",
    "tax",
    "net",
    "checkouts",
    "returns",
    "units_sold",
    "units_returned",
    "as_of_lane",
    "as_of_position",
    "as_of_time",
)
SALES_FIGURES: Final = (
    "checkouts",
    "returns",
    "units_sold",
    "units_returned",
    "sales",
    "refunds",
    "revenue",
    "tax",
    "net",
    "cash",
    "card",
)
SALES_MONEY: Final = frozenset({"sales", "refunds", "revenue", "tax", "net", "cash", "card"})


def decimal(cents: int) -> str:
    """Integer cents as a decimal string with two places: ``-5`` → ``-0.05``."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def utc_time(unix: float) -> str:
    """A commit time (Unix seconds) in ISO 8601, UTC; empty for none (0)."""
    return datetime.fromtimestamp(unix, UTC).isoformat() if unix > 0 else ""


def _as_of(as_of: AsOf) -> list[object]:
    return [as_of.lane, as_of.position, utc_time(as_of.at)]


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def report_csv(report: Report) -> str:
    """Every product row of ``report``, with its as-of, as CSV."""
    rows = []
    for row in report.rows:
        as_of = row.as_of
        rows.append(
            [
                row.product_id,
                row.name,
                decimal(row.price),
                row.tax_rate,
                str(row.discontinued).lower(),
                row.units_sold,
                row.units_returned,
                decimal(row.revenue),
                decimal(row.tax),
                decimal(row.revenue - row.tax),
                row.received,
                row.count_adjustments,
                row.stock_left,
                row.open_shortfall,
                row.units_oversold,
                row.reorder_point,
                str(is_low(row.stock_left, row.reorder_point)).lower(),
                as_of.lane,
                as_of.position,
                as_of.version,
                utc_time(as_of.at),
            ]
        )
    return _csv(REPORT_COLUMNS, rows)


def totals_csv(report: Report) -> str:
    """The totals of ``report``: one ``total`` row, then a ``rate`` row per VAT rate."""
    totals = report.totals
    as_of = _as_of(totals.as_of)
    counts = [totals.checkouts, totals.returns, totals.units_sold, totals.units_returned]
    money = [decimal(totals.revenue), decimal(totals.tax), decimal(totals.revenue - totals.tax)]
    rows: list[list[object]] = [["total", "", "", *money, *counts, *as_of]]
    for entry in totals.by_rate:
        rows.append(
            [
                "rate",
                entry.rate,
                entry.basis_points,
                decimal(entry.revenue),
                decimal(entry.tax),
                decimal(entry.net),
                "",
                "",
                "",
                "",
                *as_of,
            ]
        )
    return _csv(TOTALS_COLUMNS, rows)


def sales_csv(cut: SalesCut, by: str) -> str:
    """A row per period of ``cut``: ``by="hour"`` names each by its start (ISO, with the
    zone's offset), ``by="day"`` by its date."""
    as_of = _as_of(cut.as_of)
    rows = []
    for period in cut.periods:
        figures = period.figures
        when = period.start.isoformat() if by == "hour" else period.start.date().isoformat()
        values: list[object] = []
        for name in SALES_FIGURES:
            value = getattr(figures, name)
            values.append(decimal(value) if name in SALES_MONEY else value)
        rows.append([when, cut.zone, *values, *as_of])
    return _csv(
        (by, "time_zone", *SALES_FIGURES, "as_of_lane", "as_of_position", "as_of_time"), rows
    )
