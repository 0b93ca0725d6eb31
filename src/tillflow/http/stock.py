"""Stock routes: deliveries, counts and reorder points (managers), stock levels, open
shortfalls and low stock (managers and viewers).

A shortfall (units sold that were not on the shelf) is resolved by a delivery or a count
that brings the stock back to zero or more: Inventory then records ``ShortfallResolved``.
A product is low while its stock is below its reorder point; Inventory records one
``LowStock`` per fall below it (:mod:`tillflow.shop.inventory.stock`).
Stock is only changed for products in the catalog (404 otherwise).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tillflow.engine import Receipt
from tillflow.http.auth import MANAGERS, VIEWERS, GuardedRoute, require
from tillflow.http.idempotency import IdempotencyKey, optional_key
from tillflow.http.problems import problem_responses
from tillflow.http.report import (
    AsOfOut,
    FreshnessOut,
    ProductRowOut,
    ReadYourWrites,
    read_report,
)
from tillflow.http.schemas import Count, Identifier, ReceiptOut, RequestBody, StockQuantity
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.errors import UnknownProduct
from tillflow.shop.inventory.commands import CountStock, ReceiveStock, SetReorderPoint
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.inventory.stock import StockLevel

router = APIRouter(prefix="/stock", tags=["stock"], route_class=GuardedRoute)

ProductId = Annotated[
    Identifier,
    Path(description="The product's id.", openapi_examples={"apple": {"value": "apple"}}),
]
WRITE = problem_responses(400, 401, 403, 404, 409, 413, 415, 422)


class DeliveryIn(RequestBody):
    quantity: StockQuantity
    delivery_id: Identifier | None = Field(
        default=None,
        description="Makes a retry harmless (or send an Idempotency-Key header).",
    )


class CountIn(RequestBody):
    counted: Count = Field(description="Units on the shelf, counted.")
    count_id: Identifier | None = Field(
        default=None,
        description="Makes a retry harmless: a count is absolute, so a retried stale count "
        "would undo what happened since (or send an Idempotency-Key header).",
    )


class ReorderPointIn(RequestBody):
    reorder_point: Count = Field(
        description="The product is low while its stock is below this (0: no reorder point)."
    )
    change_id: Identifier | None = Field(
        default=None,
        description="Makes a retry answer the first call's receipt (or send an "
        "Idempotency-Key header); without it, the point the product already has records "
        "nothing.",
    )


class StockOut(BaseModel):
    """A product's stock as Inventory recorded it at ``version`` of its stream."""

    product_id: str
    stock: int
    short: int = Field(description="Units sold that were not on the shelf, still open.")
    reorder_point: int = Field(description="0: none.")
    low: bool = Field(description="The stock is below the reorder point.")
    version: int

    @classmethod
    def of(cls, level: StockLevel) -> StockOut:
        return cls.model_validate(level, from_attributes=True)


class StockChanged(BaseModel):
    """The stock right after this change, and its receipt."""

    stock: StockOut
    receipt: ReceiptOut


class ShortfallsOut(BaseModel):
    """Products with an open shortfall, from the report (as of its freshness)."""

    shortfalls: list[ProductRowOut]
    freshness: FreshnessOut


class LowProductOut(BaseModel):
    """A product below its reorder point, from its report row."""

    product_id: str
    name: str
    stock: int
    reorder_point: int
    short: int
    since: AsOfOut | None = Field(
        description="The LowStock alert that opened this low spell (null only while a count "
        "or reorder point is in the report and the alert appended with it not yet)."
    )
    as_of: AsOfOut = Field(description="What the row's figures reflect.")


class LowStockOut(BaseModel):
    """Products below their reorder point, from the report (as of its freshness)."""

    low: list[LowProductOut]
    freshness: FreshnessOut


def _known(services: Services, product_id: str) -> None:
    if product_id not in services.shop.sale.catalog().products:
        raise UnknownProduct(product_id)


def _changed(services: Services, product_id: str, receipt: Receipt) -> StockChanged:
    stream = stock_stream(product_id)
    version = receipt.streams[stream]
    [event] = services.store.read_stream(stream, version - 1, version)
    level = StockLevel.after(product_id, event)
    return StockChanged(stock=StockOut.of(level), receipt=ReceiptOut.of(receipt))


@router.get(
    "/shortfalls",
    summary="Products sold beyond their stock, not yet resolved",
    dependencies=[require(VIEWERS, "read shortfalls")],
    responses=problem_responses(401, 403, 422),
)
async def shortfalls(services: ServicesDep, wait: ReadYourWrites) -> ShortfallsOut:
    report = await read_report(services, wait)
    return ShortfallsOut(
        shortfalls=[row for row in report.rows if row.open_shortfall > 0],
        freshness=report.freshness,
    )


@router.get(
    "/low",
    summary="Products below their reorder point",
    dependencies=[require(VIEWERS, "read low stock")],
    responses=problem_responses(401, 403, 422),
)
async def low_stock(services: ServicesDep, wait: ReadYourWrites) -> LowStockOut:
    report = await read_report(services, wait)
    return LowStockOut(
        low=[
            LowProductOut(
                product_id=row.product_id,
                name=row.name,
                stock=row.stock_left,
                reorder_point=row.reorder_point,
                short=row.open_shortfall,
                since=row.low_since,
                as_of=row.as_of,
            )
            for row in report.rows
            if row.low
        ],
        freshness=report.freshness,
    )


@router.get(
    "/{product_id}",
    summary="A product's stock, from Inventory",
    dependencies=[require(VIEWERS, "read stock")],
    responses=problem_responses(401, 403, 404, 422),
)
async def stock_level(product_id: ProductId, services: ServicesDep) -> StockOut:
    _known(services, product_id)
    return StockOut.of(services.shop.inventory.level(product_id))


@router.post(
    "/{product_id}/deliveries",
    status_code=201,
    summary="Put a delivery on the shelf",
    dependencies=[require(MANAGERS, "receive stock")],
    responses=WRITE,
)
async def receive(
    product_id: ProductId,
    body: DeliveryIn,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> StockChanged:
    _known(services, product_id)
    delivery_id = optional_key("delivery_id", body.delivery_id, idempotency_key)
    command = ReceiveStock(product_id, body.quantity, delivery_id)
    receipt = await run_in_threadpool(services.shop.inventory.receive, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/counts",
    status_code=201,
    summary="Record a stock-take",
    dependencies=[require(MANAGERS, "count stock")],
    responses=WRITE,
)
async def count(
    product_id: ProductId,
    body: CountIn,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> StockChanged:
    _known(services, product_id)
    count_id = optional_key("count_id", body.count_id, idempotency_key)
    command = CountStock(product_id, body.counted, count_id)
    receipt = await run_in_threadpool(services.shop.inventory.count, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/reorder-point",
    summary="Set a product's reorder point",
    dependencies=[require(MANAGERS, "set reorder points")],
    responses=WRITE,
)
async def set_reorder_point(
    product_id: ProductId,
    body: ReorderPointIn,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> StockChanged:
    _known(services, product_id)
    change_id = optional_key("change_id", body.change_id, idempotency_key)
    command = SetReorderPoint(product_id, body.reorder_point, change_id)
    receipt = await run_in_threadpool(services.shop.inventory.set_reorder_point, command)
    return _changed(services, product_id, receipt)
