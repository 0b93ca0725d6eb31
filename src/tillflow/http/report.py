"""Report routes (managers and viewers): every row and the totals, or one product's row,
always with their freshness.

Read-your-writes: pass a write's ``receipt.token`` as ``?wait_for=`` (and optionally
``&timeout=`` seconds, default 5, at most 60): the read first waits until the report has
passed that receipt. It never fails for lateness: ``freshness.waited`` says ``reached``,
``timed_out`` or ``failed`` (a processor the report depends on has stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, computed_field

from tillflow.engine import EventStore, Receipt
from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import Identifier
from tillflow.http.services import Services, ServicesDep
from tillflow.service.receipt_tokens import PATTERN as RECEIPT_TOKEN_PATTERN
from tillflow.service.receipt_tokens import decode_receipt
from tillflow.shop.errors import InvalidField, UnknownProduct
from tillflow.shop.inventory.stock import is_low
from tillflow.shop.reporting.incomplete import incomplete_since
from tillflow.shop.reporting.queries import Freshness, Report
from tillflow.shop.reporting.rows import ProductRow

router = APIRouter(prefix="/report", tags=["report"], route_class=GuardedRoute)

MOST_WAIT: Final = 60.0


class AsOfOut(BaseModel):
    """The last event a figure reflects: lane, position, commit time (Unix seconds) and,
    for a product row, Inventory's version of the product."""

    lane: int
    position: int
    at: float
    version: int = 0


class ProductRowOut(BaseModel):
    """One product; every figure in it describes the same moment (``as_of``)."""

    product_id: str
    name: str
    price: int
    tax_rate: str = Field(description="The name of the product's rate in the shop's table.")
    discontinued: bool
    units_sold: int
    units_returned: int
    revenue: int = Field(description="Sales − refunds as paid (tax included), minor units.")
    tax: int = Field(description="The tax inside revenue; net revenue is revenue − tax.")
    received: int
    count_adjustments: int
    stock_left: int
    open_shortfall: int
    units_oversold: int
    as_of: AsOfOut
    reorder_point: int = Field(default=0, description="Inventory's reorder point (0: none).")
    low_since: AsOfOut | None = Field(
        default=None, description="While below the reorder point: the LowStock alert."
    )
    low_alerts: int = Field(default=0, description="LowStock alerts recorded, ever.")
    incomplete_since: float | None = Field(
        default=None,
        description="When a sale or return of this product was parked (Unix time): the "
        "row misses it until it is retried or skipped (GET /dead-letters); null: complete.",
    )

    @computed_field(description="The stock is below the reorder point.")  # type: ignore[prop-decorator]
    @property
    def low(self) -> bool:
        return is_low(self.stock_left, self.reorder_point)


class RateTotalsOut(BaseModel):
    """Sales at one rate of the table (at one size of it), net of refunds. Rate ``""``:
    sales recorded before the shop kept VAT."""

    rate: str
    basis_points: int = Field(description="The rate's size: 2000 is 20 %.")
    revenue: int = Field(description="As paid, tax included.")
    tax: int
    net: int = Field(description="revenue − tax.")


class TotalsOut(BaseModel):
    revenue: int = Field(description="Sales − refunds as paid (tax included), minor units.")
    tax: int = Field(description="The tax inside revenue.")
    checkouts: int
    returns: int
    units_sold: int
    units_returned: int
    by_rate: list[RateTotalsOut] = Field(
        description="Revenue, tax and net per rate: they add up to revenue and tax."
    )
    as_of: AsOfOut


class LaneAsOf(BaseModel):
    lane: int
    position: int = Field(description="The report's checkpoint on this lane.")
    at: float | None = Field(description="Commit time of the event at that position.")


class FreshnessOut(BaseModel):
    """How far the report is behind the log, per lane and in all."""

    checkpoint: dict[int, int]
    head: dict[int, int]
    lag_events: int
    lag_seconds: float
    waited: Literal["reached", "timed_out", "failed"] | None = Field(
        description="With wait_for: whether the report reached the receipt."
    )
    as_of: list[LaneAsOf]


class ReportOut(BaseModel):
    rows: list[ProductRowOut]
    totals: TotalsOut
    freshness: FreshnessOut
    version: int = Field(
        default=1,
        description="The version of the report read: part of what it is as of. A "
        "blue/green rebuild (`tillflow rebuild reporting`) makes a new one and switches "
        "reads to it at once.",
    )


class ProductReportOut(BaseModel):
    row: ProductRowOut
    freshness: FreshnessOut
    version: int = Field(default=1, description="The version of the report read.")


@dataclass(frozen=True)
class Wait:
    wait_for: str | None
    timeout: float


def read_your_writes(
    wait_for: Annotated[
        str | None,
        Query(
            pattern=RECEIPT_TOKEN_PATTERN,
            description="A receipt token from a write: wait until the report has passed it.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        Query(ge=0, le=MOST_WAIT, allow_inf_nan=False, description="Seconds to wait at most."),
    ] = 5.0,
) -> Wait:
    return Wait(wait_for, timeout)


ReadYourWrites = Annotated[Wait, Depends(read_your_writes)]


def freshness_out(store: EventStore, freshness: Freshness) -> FreshnessOut:
    """The JSON form of a processor's ``freshness``, with each checkpoint's commit time."""
    as_of = []
    for lane, position in sorted(freshness.checkpoint.items()):
        passed = store.read(lane, position - 1, position) if position > 0 else []
        as_of.append(
            LaneAsOf(lane=lane, position=position, at=passed[0].recorded_at if passed else None)
        )
    return FreshnessOut(
        checkpoint=freshness.checkpoint,
        head=freshness.head,
        lag_events=freshness.lag_events,
        lag_seconds=freshness.lag_seconds,
        waited=freshness.waited,  # type: ignore[arg-type]  # one of the three, or None
        as_of=as_of,
    )


def rows_out(store: EventStore, rows: list[ProductRow]) -> list[ProductRowOut]:
    """The JSON form of report rows, those missing a parked sale or return marked."""
    incomplete = incomplete_since(store)
    out = [ProductRowOut.model_validate(msgspec.to_builtins(row)) for row in rows]
    for row in out if incomplete else []:
        row.incomplete_since = incomplete.get(row.product_id)
    return out


def report_out(store: EventStore, report: Report) -> ReportOut:
    """The JSON form of ``report``, read from ``store``."""
    return ReportOut(
        rows=rows_out(store, report.rows),
        totals=TotalsOut.model_validate(msgspec.to_builtins(report.totals)),
        freshness=freshness_out(store, report.freshness),
        version=report.version,
    )


def awaited(store: EventStore, wait: Wait) -> Receipt | None:
    """The receipt ``wait.wait_for`` names (``None`` if none). Raises
    :class:`InvalidField` for a token that is not a receipt of this store."""
    if wait.wait_for is None:
        return None
    receipt = decode_receipt(wait.wait_for)
    heads = store.heads()
    for lane, position in receipt.positions.items():
        if lane not in heads:
            raise InvalidField("wait_for", wait.wait_for, f"names lane {lane}: no such lane")
        if position > heads[lane]:
            raise InvalidField(
                "wait_for",
                wait.wait_for,
                f"names position {position} on lane {lane}, beyond the log's head "
                f"{heads[lane]}: not a receipt of this store",
            )
    return receipt


async def read_report(services: Services, wait: Wait) -> ReportOut:
    """The report, after waiting for ``wait.wait_for`` if given. Raises
    :class:`InvalidField` for a token that is not a receipt of this store."""
    receipt = awaited(services.store, wait)
    report = await services.shop.report.read(services.runtime, receipt, wait.timeout)
    return report_out(services.store, report)


@router.get(
    "",
    summary="The report: a row per product, totals, freshness",
    dependencies=[require(VIEWERS, "read the report")],
    responses=problem_responses(401, 403, 422),
)
async def get_report(services: ServicesDep, wait: ReadYourWrites) -> ReportOut:
    return await read_report(services, wait)


@router.get(
    "/products/{product_id}",
    summary="One product's row",
    dependencies=[require(VIEWERS, "read the report")],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_product_row(
    product_id: Annotated[
        Identifier,
        Path(description="The product's id.", openapi_examples={"apple": {"value": "apple"}}),
    ],
    services: ServicesDep,
    wait: ReadYourWrites,
) -> ProductReportOut:
    report = await read_report(services, wait)
    row = next((row for row in report.rows if row.product_id == product_id), None)
    if row is None:
        raise UnknownProduct(product_id)
    return ProductReportOut(row=row, freshness=report.freshness, version=report.version)
