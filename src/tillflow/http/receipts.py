"""Receipt routes: a checkout's or a return's receipt, printable.

``GET /checkouts/{checkout_id}/receipt`` and
``GET /checkouts/{checkout_id}/returns/{return_id}/receipt`` answer 48-column text for an
80 mm thermal printer by default (``text/plain``), or an HTML page when the ``Accept``
header ranks ``text/html`` above ``text/plain`` (as browsers send it). Both are rendered
from one view model (:mod:`tillflow.shop.receipts`).

Receipt numbers are given by the cash-up's processor (``tills``) behind the sale: a checkout
recorded an instant ago may not be numbered yet. The route then waits for it, at most
``timeout`` seconds (default 5); still unnumbered (the processor is far behind or
stopped), it answers 503 ``receipt-not-numbered`` with ``Retry-After`` — never a receipt
without its number. Unknown ids: 404 naming the id.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from tillflow.http.auth import ANYONE, GuardedRoute, require
from tillflow.http.problems import problem_response, problem_responses
from tillflow.http.report import MOST_WAIT
from tillflow.http.schemas import Identifier
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.receipts.html import render_html
from tillflow.shop.receipts.lookup import read_receipt
from tillflow.shop.receipts.text import render_text

router = APIRouter(prefix="/checkouts", tags=["receipts"], route_class=GuardedRoute)

PLAIN: Final = "text/plain"
HTML: Final = "text/html"
DEFAULT_WAIT: Final = 5.0

CheckoutId = Annotated[
    Identifier, Path(description="The checkout's id.", openapi_examples={"c-1": {"value": "c-1"}})
]
ReturnId = Annotated[
    Identifier, Path(description="The return's id.", openapi_examples={"r-1": {"value": "r-1"}})
]
Timeout = Annotated[
    float,
    Query(
        ge=0,
        le=MOST_WAIT,
        allow_inf_nan=False,
        description="Seconds to wait at most for the checkout's receipt number.",
    ),
]
Accept = Annotated[str | None, Header(description="text/plain (default) or text/html.")]


def _responses() -> dict[int | str, dict[str, Any]]:
    pending = problem_response(503)
    pending["description"] = (
        "The checkout is recorded but not numbered yet (the tills processor, which numbers "
        "receipts, is behind or stopped): retry after Retry-After seconds. Or the server is "
        "shutting down."
    )
    return {
        200: {
            "description": "The receipt: 48-column text, or an HTML page.",
            "content": {
                PLAIN: {"schema": {"type": "string"}},
                HTML: {"schema": {"type": "string"}},
            },
        },
        **problem_responses(401, 403, 404, 422),
        503: pending,
    }


def _weight(parameters: list[str]) -> float:
    """The ``q`` of a media range's parameters (1 when absent; 0 when not a number 0..1)."""
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0.0 <= weight <= 1.0 else 0.0
    return 1.0


def preferred(accept: str | None) -> str:
    """``text/html`` when ``accept`` ranks it above ``text/plain`` (each weighed by its most
    specific matching range, RFC 9110 §12.5.1), else ``text/plain``: no header, ``*/*``, a
    tie or neither named gives text."""
    weights = {PLAIN: 0.0, HTML: 0.0}
    best = {PLAIN: -1, HTML: -1}
    for item in (accept or "").split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        for offered in (PLAIN, HTML):
            if media == offered:
                level = 2
            elif media == "text/*":
                level = 1
            elif media == "*/*":
                level = 0
            else:
                continue
            if level > best[offered]:
                best[offered], weights[offered] = level, _weight(parameters)
    return HTML if weights[HTML] > weights[PLAIN] else PLAIN


async def _answer(
    services: Services,
    accept: str | None,
    timeout: float,
    checkout_id: str,
    return_id: str | None = None,
) -> Response:
    receipt = await read_receipt(
        services.store, services.runtime, services.header, checkout_id, return_id, timeout
    )
    media = preferred(accept)
    body = render_html(receipt) if media == HTML else render_text(receipt)
    return Response(body, media_type=f"{media}; charset=utf-8", headers={"Vary": "Accept"})


@router.get(
    "/{checkout_id}/receipt",
    summary="A checkout's receipt (text for a thermal printer, or HTML)",
    dependencies=[require(ANYONE, "read receipts")],
    responses=_responses(),
    response_class=Response,
)
async def checkout_receipt(
    checkout_id: CheckoutId,
    services: ServicesDep,
    accept: Accept = None,
    timeout: Timeout = DEFAULT_WAIT,
) -> Response:
    return await _answer(services, accept, timeout, checkout_id)


@router.get(
    "/{checkout_id}/returns/{return_id}/receipt",
    summary="A return's receipt, naming the original checkout and its receipt number",
    dependencies=[require(ANYONE, "read receipts")],
    responses=_responses(),
    response_class=Response,
)
async def return_receipt(
    checkout_id: CheckoutId,
    return_id: ReturnId,
    services: ServicesDep,
    accept: Accept = None,
    timeout: Timeout = DEFAULT_WAIT,
) -> Response:
    return await _answer(services, accept, timeout, checkout_id, return_id)
