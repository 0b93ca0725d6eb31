"""Every error as an RFC 9457 problem document (``application/problem+json``)::

    {"type": "urn:tillflow:problem:invalid-field", "title": "Invalid field", "status": 422,
     "detail": "lines[0].quantity: must be between 1 and 10000",
     "errors": [{"field": "lines[0].quantity", "location": "body",
                 "reason": "must be between 1 and 10000"}]}

Status codes (the HTTP layer is the only place where errors become them):

=============================================  ======  =========================
error                                          status  type (``urn:tillflow:problem:…``)
=============================================  ======  =========================
body that is not JSON (``NaN``, ``Infinity``,  400     ``malformed-json``
``-Infinity`` included; only whitespace)
body that cannot be read (e.g. a number with   400     ``bad-request``
more than 4,300 digits), bad Content-Length
(HTTP the server cannot parse at all gets the
server's own plain-text 400)
missing / invalid / revoked token              401     ``unauthenticated``
a role acting outside its rights               403     ``forbidden``
unknown route; unknown product, checkout or    404     ``not-found``, ``unknown-product``,
return named in the URL path                           ``unknown-checkout``,
                                                       ``unknown-return``
till or closed session unknown to the cash-up  404     ``unknown-till``,
(in the URL path)                                      ``unknown-session``
method not allowed on the route                405     ``method-not-allowed``
product already in the catalog                 409     ``product-exists``
a sale, return or close at a till that was     409     ``till-not-open``
opened before and is closed now
opening a till that is open                    409     ``till-open``
dead letter unknown (in the path) / already    404     ``unknown-dead-letter``
resolved / a request pending or held behind    409     ``dead-letter-resolved``,
an upstream's                                          ``dead-letter-busy``
GTIN another product carries                   409     ``duplicate-gtin``
id (idempotency key) reused with other content 409     ``idempotency-conflict``
discontinued product named in the path         409     ``product-discontinued``
too many concurrent writers, retries exhausted 409     ``concurrency-conflict``
body over the size limit                       413     ``body-too-large``
body not sent as ``application/json``          415     ``unsupported-media-type``
a field the shop cannot accept (wrong type,    422     ``invalid-field``
missing, unknown, out of range, bad name), an
unknown query parameter, an empty body where
one is required (``body``: required);
unknown or discontinued product in the body            ``unknown-product``,
                                                       ``product-discontinued``
return of more than was bought                 422     ``return-exceeds-purchase``
GTIN no product carries (in the path: 404)     422     ``unknown-gtin``
catalog file with bad rows (each field by      422     ``invalid-catalog``
``line``; nothing imported)
refund of more than was paid (or than the      422     ``refund-exceeds-payment``
terminal has left of the approval)
card declined by the terminal (no sale; the    402     ``card-declined``
decline is recorded)
checkout id sent to the terminal before with   409     ``idempotency-conflict``
another card or amount
refund of an approval the terminal does not    409     ``terminal-refused``
know (nothing recorded)
the card terminal did not answer in time       504     ``terminal-timeout``
(nothing recorded; retry with the same key)
the store is closing, or its database is       503     ``unavailable``
unavailable (retry with the same key)
a receipt asked for before the receipts        503     ``receipt-not-numbered``
processor numbered its checkout (Retry-After)
an event in the log this release cannot read   500     ``unreadable-event``
(written by a newer release, or its upcaster
failed): type and versions named
=============================================  ======  =========================

Rule for things that do not exist: named in the URL path → 404 (the resource is not
there); named in the body → 422 (the request refers to something unusable).
Problem documents name fields and reasons; they quote only ids that passed validation,
never raw input, and are rendered as ASCII JSON, so no input can make one fail to render.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from email.message import Message
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from tillflow.engine import (
    ConcurrencyConflict,
    DeadLetterBusy,
    DeadLetterResolved,
    NoUpcastPath,
    StoreClosed,
    StoreUnavailable,
    TillflowError,
    UnknownDeadLetter,
)
from tillflow.shop.errors import (
    CardDeclined,
    CatalogImportRefused,
    CheckoutConflict,
    DuplicateGtin,
    InvalidField,
    ProductDiscontinued,
    ProductExists,
    ReceiptNotNumbered,
    RefundExceedsPayment,
    ReturnExceedsPurchase,
    UnknownCheckout,
    UnknownGtin,
    UnknownProduct,
    UnknownReturn,
)
from tillflow.shop.sale.payments import (
    RefundExceedsCharge,
    TerminalKeyReused,
    TerminalTimeout,
    UnknownAuthorization,
)
from tillflow.shop.sale.till_sessions import TillAlreadyOpen, TillNotOpen
from tillflow.shop.tills.queries import UnknownSession, UnknownTill

log = logging.getLogger("tillflow.http")

RETRY_AFTER: Final = "1"
"""Seconds a client is asked to wait before sending a request again that met the database
away (503); the server itself retries with backoff and resumes once it is back."""

MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:tillflow:problem:"
Location = Literal["body", "query", "path", "header"]


class FieldError(BaseModel):
    """One field that was wrong, and why."""

    model_config = ConfigDict(extra="forbid")

    field: str
    reason: str
    location: Location | None = None
    line: int | None = None
    """The line of an uploaded file the field is on (a catalog import)."""


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


class ProblemResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        # ASCII-only and strict: a problem can never fail to render, whatever the input held
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """A problem response with ``type`` ``urn:tillflow:problem:<slug>``."""
    document = Problem(
        type=TYPE_PREFIX + slug, title=title, status=status, detail=detail, errors=list(errors)
    )
    return ProblemResponse(
        document.model_dump(exclude_none=True), status_code=status, headers=headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem documents for ``statuses``."""
    return {status: problem_response(status) for status in statuses}


def problem_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of a problem document with ``status``. A 400 may also
    come from the HTTP server itself, as plain text, for a request it cannot parse."""
    content: dict[str, Any] = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    if status == 400:
        content["text/plain"] = {"schema": {"type": "string"}}
    return {"description": DESCRIPTIONS[status], "content": content}


DESCRIPTIONS: Final = {
    400: "A request that cannot be parsed: JSON that is not valid (a problem document), or "
    "HTTP the server itself cannot parse (plain text: bad framing headers, unknown methods).",
    401: "No token, or a token that is unknown or revoked.",
    402: "The card was declined: no sale was recorded (the decline was, for audit).",
    403: "The token's role may not do this.",
    404: "Nothing at this path (or the product or checkout it names does not exist).",
    409: "Conflicts with what is recorded (duplicate, idempotency key reused differently).",
    413: "The body is larger than the limit.",
    415: "The body is not sent as application/json.",
    422: "A field the shop cannot accept; `errors` names each field and the reason.",
    503: "The server is shutting down.",
    504: "The card terminal did not answer in time: nothing recorded; retry with the same key.",
}

# -- mapping errors -------------------------------------------------------------------------

_REASONS: Final = {
    "missing": "required",
    "extra_forbidden": "unknown field (not accepted)",
    "int_type": "must be a whole number (an integer, not a string or a float)",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "timezone_aware": "must carry a time zone (e.g. Z or +01:00)",
}


def _path_text(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _field_errors(raw: Sequence[Any]) -> list[FieldError]:
    errors = []
    for item in raw:
        loc = tuple(item.get("loc", ()))
        location: Location | None = None
        if loc and loc[0] in ("body", "query", "path", "header"):
            location = loc[0]
            loc = loc[1:]
        field = _path_text(loc) or (location or "request")
        kind = str(item.get("type", ""))
        reason = _REASONS.get(kind) or str(item.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append(FieldError(field=field, reason=reason, location=location))
    return errors


def is_json(content_type: str | None) -> bool:
    """Whether ``content_type`` is JSON as FastAPI reads it (``application/json``, ``…+json``)."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _validation_failed(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    raw = list(error.errors())
    if any(item.get("type") == "json_invalid" for item in raw):
        where = next(item for item in raw if item.get("type") == "json_invalid")
        reason = str(where.get("ctx", {}).get("error", "not valid JSON"))
        position = where["loc"][1] if len(where.get("loc", ())) > 1 else "?"
        return problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body is not valid JSON: {reason} at character {position}",
            [FieldError(field="body", reason=reason, location="body")],
        )
    has_body = request.headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in request.headers
    )
    body_errors = any(tuple(item.get("loc", ()))[:1] == ("body",) for item in raw)
    if body_errors and has_body and not is_json(request.headers.get("content-type")):
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
            [
                FieldError(
                    field="Content-Type", reason="must be application/json", location="header"
                )
            ],
        )
    errors = _field_errors(raw)
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors[:5])
    if len(errors) > 5:
        detail += f"; and {len(errors) - 5} more"
    return problem(422, "invalid-field", "Invalid field", detail, errors)


def _location(request: Request, field: str) -> Location:
    if field in request.path_params:
        return "path"
    if field in request.query_params:
        return "query"
    if field.lower() == "idempotency-key":
        return "header"
    return "body"


def _catalog_problem(request: Request, error: TillflowError) -> Response | None:
    """The problem for a refusal about GTINs or a catalog import, else ``None``."""
    if isinstance(error, UnknownGtin):
        in_path = error.field in request.path_params
        field = FieldError(
            field=error.field,
            reason="no product carries this GTIN",
            location="path" if in_path else "body",
        )
        return problem(404 if in_path else 422, "unknown-gtin", "Unknown GTIN", str(error), [field])
    if isinstance(error, DuplicateGtin):
        field = FieldError(
            field=error.field, reason=f"product {error.held_by!r} carries it", location="body"
        )
        return problem(409, "duplicate-gtin", "Duplicate GTIN", str(error), [field])
    if isinstance(error, CatalogImportRefused):
        errors = [
            FieldError(field=bad.field, reason=bad.reason, location="body", line=bad.line)
            for bad in error.problems
        ]
        listed = "; ".join(f"line {e.line}: {e.field}: {e.reason}" for e in errors[:5])
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        detail = f"{len(errors)} bad field(s), nothing imported: {listed}{more}"
        return problem(422, "invalid-catalog", "Invalid catalog file", detail, errors)
    return None


def _receipt_problem(request: Request, error: TillflowError) -> Response | None:
    """The problem for a receipt that cannot be printed (yet), else ``None``."""
    if isinstance(error, UnknownReturn):
        in_path = "return_id" in request.path_params
        field = FieldError(
            field="return_id", reason="no such return", location="path" if in_path else "body"
        )
        return problem(
            404 if in_path else 422, "unknown-return", "Unknown return", str(error), [field]
        )
    if isinstance(error, ReceiptNotNumbered):
        return problem(
            503,
            "receipt-not-numbered",
            "Receipt not numbered yet",
            str(error),
            headers={"Retry-After": RETRY_AFTER},
        )
    return None


def domain_problem(request: Request, error: TillflowError) -> Response:
    if isinstance(error, InvalidField):
        location = _location(request, error.field.split(".")[0].split("[")[0])
        field = FieldError(field=error.field, reason=error.reason, location=location)
        detail = f"{error.field}: {error.reason}"
        return problem(422, "invalid-field", "Invalid field", detail, [field])
    if isinstance(error, UnknownProduct):
        in_path = error.field in request.path_params
        field = FieldError(
            field=error.field,
            reason="no such product in the catalog",
            location="path" if in_path else "body",
        )
        return problem(
            404 if in_path else 422, "unknown-product", "Unknown product", str(error), [field]
        )
    if isinstance(error, ProductDiscontinued):
        in_path = error.field in request.path_params
        field = FieldError(
            field=error.field,
            reason="the product is discontinued",
            location="path" if in_path else "body",
        )
        return problem(
            409 if in_path else 422,
            "product-discontinued",
            "Product discontinued",
            str(error),
            [field],
        )
    if isinstance(error, UnknownCheckout):
        location = _location(request, "checkout_id")
        field = FieldError(field="checkout_id", reason="no such checkout", location=location)
        status = 404 if "checkout_id" in request.path_params else 422
        return problem(status, "unknown-checkout", "Unknown checkout", str(error), [field])
    if isinstance(error, ProductExists):
        field = FieldError(field="product_id", reason="already in the catalog", location="body")
        return problem(409, "product-exists", "Product exists", str(error), [field])
    barcode = _catalog_problem(request, error)
    if barcode is not None:
        return barcode
    printed = _receipt_problem(request, error)
    if printed is not None:
        return printed
    if isinstance(error, CheckoutConflict):
        field = FieldError(
            field=error.key_name,
            reason=f"already used with a different {error.field}",
            location=_location(request, error.key_name),
        )
        return problem(409, "idempotency-conflict", "Idempotency key reused", str(error), [field])
    if isinstance(error, ReturnExceedsPurchase):
        field = FieldError(
            field="lines",
            reason=f"{error.product_id}: {error.returnable} unit(s) left to return",
            location="body",
        )
        return problem(
            422, "return-exceeds-purchase", "Return exceeds purchase", str(error), [field]
        )
    payment = _payment_problem(request, error)
    if payment is not None:
        return payment
    till = _till_problem(request, error)
    if till is not None:
        return till
    parked = _dead_letter_problem(error)
    if parked is not None:
        return parked
    if isinstance(error, ConcurrencyConflict):
        return problem(
            409,
            "concurrency-conflict",
            "Concurrent change",
            "too many concurrent changes of the same thing; retry the request",
        )
    if isinstance(error, StoreClosed):
        return problem(503, "unavailable", "Unavailable", "the server is shutting down")
    if isinstance(error, StoreUnavailable):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
        services = getattr(request.app.state, "services", None)
        if services is not None:  # degraded until the store takes writes again
            services.runtime.request_refused(error)
        return problem(
            503,
            "unavailable",
            "Unavailable",
            "the database is unavailable; retry with the same idempotency key",
            headers={"Retry-After": RETRY_AFTER},
        )
    if isinstance(error, NoUpcastPath):
        log.error("unreadable event on %s %s: %s", request.method, request.url.path, error)
        return problem(500, "unreadable-event", "Unreadable event", str(error))
    log.error("unmapped error on %s %s: %r", request.method, request.url.path, error)
    return problem(500, "internal-error", "Internal error", "the server failed; see its log")


def _dead_letter_problem(error: TillflowError) -> Response | None:
    if isinstance(error, UnknownDeadLetter):
        field = FieldError(field="dead_letter_id", reason="no such dead letter", location="path")
        return problem(404, "unknown-dead-letter", "Unknown dead letter", str(error), [field])
    if isinstance(error, DeadLetterResolved):
        return problem(409, "dead-letter-resolved", "Dead letter resolved", str(error))
    if isinstance(error, DeadLetterBusy):
        return problem(409, "dead-letter-busy", "Dead letter busy", str(error))
    return None


def _payment_problem(request: Request, error: TillflowError) -> Response | None:
    """The problem for a refusal of payment (a declined card, the terminal's errors)."""
    if isinstance(error, CardDeclined):
        field = FieldError(field=error.field, reason=f"declined: {error.reason}", location="body")
        return problem(402, "card-declined", "Card declined", str(error), [field])
    if isinstance(error, TerminalTimeout):
        return problem(504, "terminal-timeout", "Card terminal timeout", str(error))
    if isinstance(error, TerminalKeyReused):
        field = FieldError(
            field=_key_name(request),
            reason=f"sent to the card terminal before with a different {error.field}",
            location=_location(request, _key_name(request)),
        )
        return problem(409, "idempotency-conflict", "Idempotency key reused", str(error), [field])
    if isinstance(error, (RefundExceedsPayment, RefundExceedsCharge)):
        field = FieldError(field="lines", reason="more than is left to refund", location="body")
        return problem(422, "refund-exceeds-payment", "Refund exceeds payment", str(error), [field])
    if isinstance(error, UnknownAuthorization):
        return problem(409, "terminal-refused", "Card terminal refused", str(error))
    return None


def _till_problem(request: Request, error: TillflowError) -> Response | None:
    """The problem for a refusal about a till's sessions, else ``None``."""
    if isinstance(error, TillNotOpen):
        if "checkout_id" in request.path_params:  # a return: the checkout's till refunds
            field = FieldError(field="checkout_id", reason="its till is not open", location="path")
        else:
            location = _location(request, "till_id")
            field = FieldError(field="till_id", reason="the till is not open", location=location)
        return problem(409, "till-not-open", "Till not open", str(error), [field])
    if isinstance(error, TillAlreadyOpen):
        reason = f"session {error.open_session!r} is open"
        field = FieldError(field="till_id", reason=reason, location="path")
        return problem(409, "till-open", "Till open", str(error), [field])
    if isinstance(error, UnknownTill):
        field = FieldError(field="till_id", reason="no such till", location="path")
        return problem(404, "unknown-till", "Unknown till", str(error), [field])
    if isinstance(error, UnknownSession):
        field = FieldError(field="session_id", reason="no closed session", location="path")
        return problem(404, "unknown-session", "Unknown session", str(error), [field])
    return None


def _key_name(request: Request) -> str:
    return "return_id" if request.url.path.endswith("/returns") else "checkout_id"


async def _tillflow_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, TillflowError)
    return domain_problem(request, error)


_HTTP: Final = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Content too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    slug, title = _HTTP.get(error.status_code, ("http-error", "HTTP error"))
    detail = error.detail if isinstance(error.detail, str) else title
    if error.status_code == 404 and detail == "Not Found":
        detail = "nothing at this path; the routes are listed at /docs"
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem(error.status_code, slug, title, detail, headers=headers)


def _allowed(request: Request) -> str:
    """Every method some route accepts at this path (Starlette names only the first
    route's): the methods for which a route matches fully."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        scope = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
        }
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal-error", "Internal error", "the server failed; see its log")


def install(app: FastAPI) -> None:
    """Route every error of ``app`` through a problem document."""
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(TillflowError, _tillflow_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
