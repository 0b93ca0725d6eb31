"""The shop's VAT rate table: list it (anyone with a token), define or resize a rate
(managers). A product names its rate (``POST /catalog/{id}/tax-rate``); each checkout line
records the rate's size it was sold at, so resizing a rate changes later sales only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tillflow.http.auth import ANYONE, MANAGERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import BasisPoints, Identifier, ReceiptOut, RequestBody
from tillflow.http.services import ServicesDep
from tillflow.shop.sale.commands import DefineTaxRate

router = APIRouter(prefix="/tax-rates", tags=["catalog"], route_class=GuardedRoute)

RateName = Annotated[
    Identifier,
    Path(description="The rate's name.", openapi_examples={"standard": {"value": "standard"}}),
]


class TaxRateOut(BaseModel):
    rate: str
    basis_points: int = Field(description="The rate's size: 2000 is 20 %.")


class TaxRatesOut(BaseModel):
    """The table as of ``version`` of the catalog stream, by name."""

    version: int
    rates: list[TaxRateOut]


class DefineTaxRateIn(RequestBody):
    basis_points: BasisPoints


class TaxRateDefinedOut(BaseModel):
    rate: TaxRateOut
    receipt: ReceiptOut


@router.get(
    "",
    summary="The shop's tax rates",
    dependencies=[require(ANYONE, "read the catalog")],
    responses=problem_responses(401, 403, 422),
)
async def list_rates(services: ServicesDep) -> TaxRatesOut:
    catalog = services.shop.sale.catalog()
    return TaxRatesOut(
        version=catalog.version,
        rates=[
            TaxRateOut(rate=name, basis_points=points)
            for name, points in sorted(catalog.rates.items())
        ],
    )


@router.put(
    "/{rate}",
    summary="Define a tax rate or change its size (later sales use it)",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422),
)
async def define_rate(
    rate: RateName, body: DefineTaxRateIn, services: ServicesDep
) -> TaxRateDefinedOut:
    command = DefineTaxRate(rate, body.basis_points)
    receipt = await run_in_threadpool(services.shop.sale.define_tax_rate, command)
    return TaxRateDefinedOut(
        rate=TaxRateOut(rate=rate, basis_points=body.basis_points),
        receipt=ReceiptOut.of(receipt),
    )
