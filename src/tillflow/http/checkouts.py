"""Checkout and return routes (tills).

``POST /checkouts``: the checkout id in the body, or an ``Idempotency-Key`` header (if both
are given they must be equal), is the idempotency key. The first request records the sale
and answers 201 with the checkout as recorded and the receipt. The same key with the same
till and lines again answers **201 with the same body** (nothing new is recorded; the
recorded prices stand, whatever the catalog says by then). The same key with a different
till, lines or time is 409 ``idempotency-conflict``. Returns work the same way with
``return_id`` (or the header).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tillflow.engine import id_from_key
from tillflow.http.auth import ANYONE, TILLS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import Identifier, Quantity, ReceiptOut, RequestBody, Timestamp
from tillflow.http.services import ServicesDep
from tillflow.shop import validation
from tillflow.shop.errors import InvalidField, UnknownCheckout
from tillflow.shop.sale.commands import Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream

router = APIRouter(prefix="/checkouts", tags=["sale"], route_class=GuardedRoute)

CheckoutId = Annotated[
    Identifier, Path(description="The checkout's id.", openapi_examples={"c-1": {"value": "c-1"}})
]
IdempotencyKey = Annotated[
    Identifier | None,
    Header(
        alias="Idempotency-Key",
        description="The idempotency key, when the body does not carry the id.",
    ),
]
WRITE = problem_responses(400, 401, 403, 404, 409, 413, 415, 422)


class LineIn(RequestBody):
    product_id: Identifier
    quantity: Quantity


Lines = Annotated[list[LineIn], Field(min_length=1, max_length=validation.MAX_LINES)]


class CheckoutIn(RequestBody):
    """A sale at a till. Lines naming the same product are merged (first-seen order)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "checkout_id": "c-1001",
                    "till_id": "till-1",
                    "lines": [
                        {"product_id": "apple", "quantity": 2},
                        {"product_id": "pear", "quantity": 1},
                    ],
                }
            ]
        }
    )

    checkout_id: Identifier | None = Field(
        default=None, description="The idempotency key (or send an Idempotency-Key header)."
    )
    till_id: Identifier
    lines: Lines
    at: Timestamp | None = Field(
        default=None, description="When the sale happened at the till (default: now)."
    )


class ReturnIn(RequestBody):
    """Units of the checkout brought back; refunded at the price paid."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]}]
        }
    )

    return_id: Identifier | None = Field(
        default=None, description="The idempotency key (or send an Idempotency-Key header)."
    )
    lines: Lines
    at: Timestamp | None = None


class CheckoutLineOut(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class CheckedOutOut(BaseModel):
    """The checkout as recorded (prices in minor units)."""

    checkout_id: str
    till_id: str
    at: datetime
    lines: list[CheckoutLineOut]
    total: int

    @classmethod
    def of(cls, event: CheckedOut) -> CheckedOutOut:
        return cls.model_validate(event, from_attributes=True)


class ReturnLineOut(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    refund: int


class ItemsReturnedOut(BaseModel):
    """A return as recorded."""

    return_id: str
    checkout_id: str
    at: datetime
    lines: list[ReturnLineOut]
    refund_total: int

    @classmethod
    def of(cls, event: ItemsReturned) -> ItemsReturnedOut:
        return cls.model_validate(event, from_attributes=True)


class CheckoutRecorded(BaseModel):
    checkout: CheckedOutOut
    receipt: ReceiptOut


class ReturnRecorded(BaseModel):
    returned: ItemsReturnedOut
    receipt: ReceiptOut


class CheckoutHistory(BaseModel):
    checkout: CheckedOutOut
    returns: list[ItemsReturnedOut]


def _key(field: str, in_body: str | None, in_header: str | None) -> str:
    if in_body is not None and in_header is not None and in_body != in_header:
        raise InvalidField(
            field, in_body, "must equal the Idempotency-Key header when both are sent"
        )
    key = in_body if in_body is not None else in_header
    if key is None:
        raise InvalidField(field, None, "required (or send an Idempotency-Key header)")
    return key


def _lines(lines: list[LineIn]) -> list[LineRequest]:
    return [LineRequest(line.product_id, line.quantity) for line in lines]


@router.post(
    "",
    status_code=201,
    summary="Ring up a checkout (idempotent)",
    dependencies=[require(TILLS, "ring up checkouts")],
    responses=WRITE,
)
async def checkout(
    body: CheckoutIn, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> CheckoutRecorded:
    checkout_id = _key("checkout_id", body.checkout_id, idempotency_key)
    command = Checkout(checkout_id, body.till_id, _lines(body.lines), body.at)
    receipt, recorded = await services.shop.sale.checkout_recorded_async(command)
    services.metrics.latency.appended(receipt)
    return CheckoutRecorded(checkout=CheckedOutOut.of(recorded), receipt=ReceiptOut.of(receipt))


@router.get(
    "/{checkout_id}",
    summary="A recorded checkout and its returns",
    dependencies=[require(ANYONE, "read checkouts")],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_checkout(checkout_id: CheckoutId, services: ServicesDep) -> CheckoutHistory:
    history = services.store.read_stream(checkout_stream(checkout_id))
    if not history or history[0].type != "CheckedOut":
        raise UnknownCheckout(checkout_id)
    return CheckoutHistory(
        checkout=CheckedOutOut.of(history[0].decode(CheckedOut)),
        returns=[
            ItemsReturnedOut.of(event.decode(ItemsReturned))
            for event in history[1:]
            if event.type == "ItemsReturned"
        ],
    )


@router.post(
    "/{checkout_id}/returns",
    status_code=201,
    summary="Take back units of a checkout (idempotent)",
    dependencies=[require(TILLS, "take returns")],
    responses=WRITE,
)
async def return_items(
    checkout_id: CheckoutId,
    body: ReturnIn,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> ReturnRecorded:
    return_id = _key("return_id", body.return_id, idempotency_key)
    command = ReturnItems(return_id, checkout_id, _lines(body.lines), body.at)
    receipt = await run_in_threadpool(services.shop.sale.return_items, command)
    recorded = services.store.get_event(id_from_key("return", return_id))
    assert recorded is not None  # the receipt says it is recorded
    return ReturnRecorded(
        returned=ItemsReturnedOut.of(recorded.decode(ItemsReturned)),
        receipt=ReceiptOut.of(receipt),
    )
