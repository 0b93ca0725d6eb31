"""Checkout and return routes (tills).

``POST /checkouts``: the checkout id in the body, or an ``Idempotency-Key`` header (if both
are given they must be equal), is the idempotency key. The first request records the sale
and answers 201 with the checkout as recorded and the receipt. The same key with the same
till, lines and tenders again answers **201 with the same body** (nothing new is recorded;
the recorded prices stand, whatever the catalog says by then). The same key with a
different till, lines, time or tenders is 409 ``idempotency-conflict``. Returns work the
same way with ``return_id`` (or the header).

A card is authorized by the shop's terminal (idempotency key: the checkout id) before the
sale is recorded. Declined: 402 ``card-declined`` naming the tender and the reason, the
decline recorded on the till's stream, no sale; a retry of that request answers the same
402 without asking the terminal; the same checkout id may then be settled in cash. A
terminal that does not answer in time is asked what it answered for the key; when it answered
nothing (or cannot say): 504 ``terminal-timeout``, nothing recorded — retry
with the same key (the terminal finds its approval; the card is never charged twice).
Returns refund the card first (through the terminal), then cash.

Every rule of ``POST /checkouts`` is here, once: who may ring up (:data:`RING_UP`), what a
valid checkout is (:class:`CheckoutIn`, :func:`checkout_command`), which price applies (the
sale service's one checkout decision) and what the reply looks like (:func:`ring_up`).
:mod:`tillflow.http.fast_checkout` calls the same four and only skips the framework.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec
from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from tillflow.engine import Receipt, id_from_key
from tillflow.http.auth import ANYONE, TILLS, GuardedRoute, RoleGuard, require
from tillflow.http.idempotency import IdempotencyKey, required_key
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import Gtin, Identifier, Quantity, ReceiptOut, RequestBody, Timestamp
from tillflow.http.services import Services, ServicesDep
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop import validation
from tillflow.shop.errors import UnknownCheckout
from tillflow.shop.sale.commands import Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream
from tillflow.shop.sale.tenders import MAX_TENDERS, Tender

router = APIRouter(prefix="/checkouts", tags=["sale"], route_class=GuardedRoute)

CheckoutId = Annotated[
    Identifier, Path(description="The checkout's id.", openapi_examples={"c-1": {"value": "c-1"}})
]
WRITE = problem_responses(400, 401, 403, 404, 409, 413, 415, 422)
PAY = problem_responses(400, 401, 403, 402, 404, 409, 413, 415, 422, 504)
RING_UP: Final = RoleGuard(TILLS, "ring up checkouts")
"""Who may ring up a checkout: the route's guard, and the fast path's."""


class LineIn(RequestBody):
    product_id: Identifier
    quantity: Quantity


Lines = Annotated[list[LineIn], Field(min_length=1, max_length=validation.MAX_LINES)]


class ScannedLineIn(RequestBody):
    """A checkout line: the product by ``product_id`` or by ``gtin`` (a scanned barcode),
    exactly one of the two."""

    product_id: Identifier | None = None
    gtin: Gtin | None = None
    quantity: Quantity


ScannedLines = Annotated[list[ScannedLineIn], Field(min_length=1, max_length=validation.MAX_LINES)]


class TenderIn(RequestBody):
    """How the customer pays (part of) the checkout, in cents. Cash: ``amount`` handed over
    (at least what is left to pay; the change is in the reply). Card: ``amount`` charged
    (exactly what it pays) and ``card``, the terminal's reference or token for it (never a
    card number); only a card tender carries ``card``. Amounts are checked by the shop's
    tender rules, which name the field (``tenders[0].amount``)."""

    type: Literal["cash", "card"]
    amount: StrictInt
    card: Identifier | None = None


Tenders = Annotated[list[TenderIn], Field(min_length=1, max_length=MAX_TENDERS)]


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
    lines: ScannedLines
    at: Timestamp | None = Field(
        default=None, description="When the sale happened at the till (default: now)."
    )
    tenders: Tenders | None = Field(
        default=None,
        description="Cash, a card, or both; omitted: the exact total in cash. A declined "
        "card answers 402 and records no sale: settle in cash with the same checkout_id, or "
        "try another card with a new one.",
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
    """A line as sold: ``line_total`` (gross, tax included) = ``net`` + ``tax``, at the
    rate named ``tax_rate`` of ``basis_points`` (``""``: recorded before VAT)."""

    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int
    tax_rate: str
    basis_points: int
    tax: int
    net: int
    gtin: str | None = Field(description="The product's GTIN when sold (14 digits).")


class PaidTenderOut(BaseModel):
    """A tender as recorded: ``amount`` paid towards the total; cash also ``handed``
    (over); a card its ``card`` reference and the terminal's authorization ``code`` and
    ``reference``. Fields that do not apply are 0 or null."""

    type: str
    amount: int
    handed: int = 0
    card: str | None = None
    code: str | None = None
    reference: str | None = None


class RefundTenderOut(BaseModel):
    """Part of a refund: cash from the drawer, or to the card of ``authorization``."""

    type: str
    amount: int
    authorization: str | None = None
    reference: str | None = None


class CheckedOutOut(BaseModel):
    """The checkout as recorded (prices in minor units); ``change``: cash handed back."""

    checkout_id: str
    till_id: str
    at: datetime
    lines: list[CheckoutLineOut]
    total: int
    tenders: list[PaidTenderOut] = []
    change: int = 0
    session_id: str | None = Field(
        default=None,
        description="The till's session it was rung up in (null: the till was never opened).",
    )

    @classmethod
    def of(cls, event: CheckedOut) -> CheckedOutOut:
        return cls.model_validate(event, from_attributes=True)


class ReturnLineOut(BaseModel):
    """A line brought back: ``refund`` = ``net`` + ``tax``, the tax the bought line's share
    for the units."""

    product_id: str
    name: str
    quantity: int
    unit_price: int
    refund: int
    tax: int
    tax_rate: str
    basis_points: int
    net: int


class ItemsReturnedOut(BaseModel):
    """A return as recorded."""

    return_id: str
    checkout_id: str
    at: datetime
    lines: list[ReturnLineOut]
    refund_total: int
    refunds: list[RefundTenderOut] = []
    till_id: str | None = Field(
        default=None, description="The till that paid the refund (the checkout's)."
    )
    session_id: str | None = Field(
        default=None, description="That till's session then (null: never opened)."
    )

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


def _lines(lines: list[LineIn]) -> list[LineRequest]:
    return [LineRequest(line.product_id, line.quantity) for line in lines]


def checkout_command(body: CheckoutIn, idempotency_key: str | None) -> Checkout:
    """The command a valid body (and ``Idempotency-Key`` header) asks for. Raises
    :class:`InvalidField` naming ``checkout_id`` when no key or two different keys are sent."""
    checkout_id = required_key("checkout_id", body.checkout_id, idempotency_key)
    tenders = None
    if body.tenders is not None:
        tenders = [Tender(tender.type, tender.amount, tender.card) for tender in body.tenders]
    lines = [LineRequest(line.product_id, line.quantity, gtin=line.gtin) for line in body.lines]
    return Checkout(checkout_id, body.till_id, lines, body.at, tenders)


class _ReceiptReply(msgspec.Struct):
    token: str
    positions: dict[int, int]
    streams: dict[str, int]


class _CheckoutReply(msgspec.Struct):
    """:class:`CheckoutRecorded`'s shape (``CheckedOut`` has ``CheckedOutOut``'s fields),
    encoded without building pydantic models (~3 µs instead of ~28)."""

    checkout: CheckedOut
    receipt: _ReceiptReply


_REPLY: Final = msgspec.json.Encoder()


def checkout_reply(recorded: CheckedOut, receipt: Receipt) -> Response:
    """The 201 of ``POST /checkouts``: the checkout as recorded and its receipt, shaped as
    :class:`CheckoutRecorded` (what the OpenAPI document states)."""
    out = _ReceiptReply(encode_receipt(receipt), dict(receipt.positions), dict(receipt.streams))
    return Response(
        _REPLY.encode(_CheckoutReply(recorded, out)), 201, media_type="application/json"
    )


async def ring_up(services: Services, command: Checkout) -> Response:
    """Record ``command`` through the sale service and answer 201 (a retry: the original
    checkout). Raises the service's refusals (:class:`~tillflow.engine.TillflowError`)."""
    receipt, recorded = await services.shop.sale.checkout_recorded_async(command)
    services.metrics.latency.appended(receipt)
    return checkout_reply(recorded, receipt)


@router.post(
    "",
    status_code=201,
    summary="Ring up a checkout (idempotent)",
    dependencies=[Depends(RING_UP)],
    responses=PAY,
    response_model=CheckoutRecorded,
)
async def checkout(
    body: CheckoutIn, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await ring_up(services, checkout_command(body, idempotency_key))


CHECKOUT_ROUTE: Final = next(
    route for route in router.routes if isinstance(route, APIRoute) and route.endpoint is checkout
)
"""The ``POST /checkouts`` route (its template labels the fast path's requests too)."""


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
    responses=PAY,
)
async def return_items(
    checkout_id: CheckoutId,
    body: ReturnIn,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> ReturnRecorded:
    return_id = required_key("return_id", body.return_id, idempotency_key)
    command = ReturnItems(return_id, checkout_id, _lines(body.lines), body.at)
    receipt = await run_in_threadpool(services.shop.sale.return_items, command)
    recorded = services.store.get_event(id_from_key("return", return_id))
    assert recorded is not None  # the receipt says it is recorded
    return ReturnRecorded(
        returned=ItemsReturnedOut.of(recorded.decode(ItemsReturned)),
        receipt=ReceiptOut.of(receipt),
    )
