"""Sales per hour as JSON (managers and viewers): ``GET /sales/hourly?date=2026-12-06``.

Every hour of the day (default: today) in the shop's time zone (``TILLFLOW_TIMEZONE``)
with its checkouts, revenue and takings by tender, their sum, and the report's *as of*: the
figures come from the report's sales buckets
(:mod:`~tillflow.shop.reporting.sales_queries`), a cut as of the report's checkpoint. The
dashboard's chart and takings follow the same message on the live stream (``event:
sales``). As CSV, with every column: ``GET /sales/hourly.csv``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.report import AsOfOut
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.reporting.sales import SalesFigures
from tillflow.shop.reporting.sales_queries import SalesReader

router = APIRouter(prefix="/sales", tags=["report"], route_class=GuardedRoute)

ISO_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    if not isinstance(value, str) or not ISO_DAY.fullmatch(value):
        raise PydanticCustomError("date_type", "must be a date as YYYY-MM-DD")
    return value


Day = Annotated[
    date, BeforeValidator(_iso_day), WithJsonSchema({"type": "string", "format": "date"})
]
"""A day written ``YYYY-MM-DD`` (not a Unix time, as pydantic would also take)."""


class TakingsOut(BaseModel):
    """Sales in a period, in cents: ``revenue`` (sales − refunds, VAT included) and takings
    by tender net of refunds (``cash`` net of change: ``cash + card == revenue``)."""

    checkouts: int
    returns: int
    revenue: int
    refunds: int
    tax: int
    cash: int
    card: int

    @classmethod
    def of(cls, figures: SalesFigures) -> TakingsOut:
        return cls(
            checkouts=figures.checkouts,
            returns=figures.returns,
            revenue=figures.revenue,
            refunds=figures.refunds,
            tax=figures.tax,
            cash=figures.cash,
            card=figures.card,
        )


class HourOut(TakingsOut):
    hour: str = Field(description="The hour's start in the shop's time zone, with its offset.")


class HourlySalesOut(BaseModel):
    date: str = Field(description="The day, in the shop's time zone.")
    time_zone: str
    hours: list[HourOut] = Field(description="Every hour of the day: 23 to 25 of them.")
    day: TakingsOut = Field(description="The day's sum.")
    as_of: AsOfOut = Field(description="The report's last handled event: what this reflects.")


def shop_today(services: Services) -> date:
    """Today in the shop's time zone, by the shop's clock."""
    return services.shop.clock().astimezone(services.header.timezone).date()


def hourly_out(services: Services, day: date | None = None) -> HourlySalesOut:
    """Every hour of ``day`` (default: :func:`shop_today`) in the shop's zone."""
    zone = services.header.timezone
    chosen = day if day is not None else shop_today(services)
    cut = SalesReader(services.store).hourly(chosen, zone, fresh=False)
    as_of = cut.as_of
    return HourlySalesOut(
        date=chosen.isoformat(),
        time_zone=cut.zone,
        hours=[
            HourOut(hour=period.start.isoformat(), **TakingsOut.of(period.figures).model_dump())
            for period in cut.periods
        ],
        day=TakingsOut.of(cut.total),
        as_of=AsOfOut(lane=as_of.lane, position=as_of.position, at=as_of.at),
    )


@router.get(
    "/hourly",
    summary="Sales per hour of a day in the shop's time zone",
    dependencies=[require(VIEWERS, "read the report")],
    responses=problem_responses(401, 403, 422),
)
async def get_hourly(
    services: ServicesDep,
    day: Annotated[
        Day | None,
        Query(alias="date", description="The day (YYYY-MM-DD); default: today in the shop."),
    ] = None,
) -> HourlySalesOut:
    return hourly_out(services, day)
