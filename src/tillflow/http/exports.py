"""CSV exports (managers and viewers): the report and sales per hour or per day.

* ``GET /report.csv`` — a row per product, each with its own *as of*;
* ``GET /report/totals.csv`` — the totals: a ``total`` row, then a row per VAT rate;
* ``GET /sales/hourly.csv?date=2026-12-06`` — every hour of that day (default: today) in
  the shop's time zone (``TILLFLOW_TIMEZONE``), 23 to 25 of them;
* ``GET /sales/daily.csv?from=2026-12-01&to=2026-12-31`` — every day of the range (at
  most 366).

The format is :mod:`tillflow.service.exports` (RFC 4180; money as decimal strings with
two places). Like ``GET /report``, each takes ``?wait_for=<receipt>&timeout=<s>`` to read
your own writes; the ``Tillflow-Waited`` header then says whether the wait ``reached``
the receipt, ``timed_out`` or ``failed``, and ``Tillflow-Lag-Events`` how many events of
the log the report had not passed when read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tillflow.engine import WaitOutcome
from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.report import ReadYourWrites, Wait, awaited
from tillflow.http.sales import Day, shop_today
from tillflow.http.services import Services, ServicesDep
from tillflow.service.exports import (
    MEDIA_TYPE,
    report_csv,
    sales_csv,
    totals_csv,
)
from tillflow.shop.reporting.projection import NAME
from tillflow.shop.reporting.queries import Freshness
from tillflow.shop.reporting.sales_queries import SalesReader

router = APIRouter(tags=["exports"], route_class=GuardedRoute)
Route = TypeVar("Route", bound=Callable[..., Awaitable[Response]])

CSV_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "RFC 4180 CSV with a header row; money as decimal strings (`12.50`).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **problem_responses(401, 403, 422),
}


async def _wait(services: Services, wait: Wait) -> WaitOutcome | None:
    """Wait for ``wait.wait_for`` (if given) until the report passed it."""
    receipt = awaited(services.store, wait)
    if receipt is None:
        return None
    return await services.runtime.wait_for(receipt, [NAME], wait.timeout)


def _csv(body: str, name: str, freshness: Freshness | None, waited: WaitOutcome | None) -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    }
    if freshness is not None:
        headers["Tillflow-Lag-Events"] = str(freshness.lag_events)
    if waited is not None:
        headers["Tillflow-Waited"] = waited.status
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


def _export(path: str, summary: str) -> Callable[[Route], Route]:
    """The route of a CSV export, for managers and viewers."""
    return router.get(
        path,
        summary=summary,
        dependencies=[require(VIEWERS, "read the report")],
        responses=CSV_RESPONSE,
        response_class=Response,
    )


@_export("/report.csv", "The report's rows as CSV, each with its as-of")
async def get_report_csv(services: ServicesDep, wait: ReadYourWrites) -> Response:
    waited = await _wait(services, wait)
    report = services.shop.report.report(waited)
    return _csv(report_csv(report), "report.csv", report.freshness, waited)


@_export("/report/totals.csv", "The report's totals as CSV: all, then per VAT rate")
async def get_totals_csv(services: ServicesDep, wait: ReadYourWrites) -> Response:
    waited = await _wait(services, wait)
    report = services.shop.report.report(waited)
    return _csv(totals_csv(report), "totals.csv", report.freshness, waited)


@_export("/sales/hourly.csv", "Sales per hour of a day in the shop's time zone, as CSV")
async def get_hourly_csv(
    services: ServicesDep,
    wait: ReadYourWrites,
    day: Annotated[
        Day | None,
        Query(alias="date", description="The day (YYYY-MM-DD); default: today in the shop."),
    ] = None,
) -> Response:
    waited = await _wait(services, wait)
    chosen = day if day is not None else shop_today(services)
    cut = SalesReader(services.store).hourly(chosen, services.header.timezone)
    return _csv(sales_csv(cut, "hour"), f"sales-{chosen}.csv", cut.freshness, waited)


@_export("/sales/daily.csv", "Sales per day of a range in the shop's time zone, as CSV")
async def get_daily_csv(
    services: ServicesDep,
    wait: ReadYourWrites,
    first: Annotated[Day, Query(alias="from", description="The first day (YYYY-MM-DD).")],
    last: Annotated[Day, Query(alias="to", description="The last day, included (≤ 366).")],
) -> Response:
    waited = await _wait(services, wait)
    cut = SalesReader(services.store).daily(first, last, services.header.timezone)
    return _csv(sales_csv(cut, "day"), f"sales-{first}-{last}.csv", cut.freshness, waited)
