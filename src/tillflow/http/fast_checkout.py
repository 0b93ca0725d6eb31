"""``POST /checkouts`` without the framework's per-request work, for the request a till
sends all day: a plain ASGI middleware in front of the app.

::

    POST /checkouts ─► CheckoutFastPath ─┬─ the plain case ─► Shop ─► 201 (bytes built here)
                                         └─ anything else ─► the FastAPI route (body replayed)

The plain case is exactly: no query string; ``Content-Type: application/json``; a
``Content-Length`` within the body limit (no ``Transfer-Encoding``); no
``Idempotency-Key`` header; an active till token as ``Authorization: Bearer …``; and a
body that decodes (msgspec, strict types, unknown fields refused) to a checkout whose
``checkout_id``, ``till_id`` and lines pass the same rules as the route's model, without
``at``. Everything else — every 4xx the route documents — is handed, with the body it
already read, to the FastAPI route of :mod:`tillflow.http.checkouts`, which stays the one
that the OpenAPI document describes and that answers problems. The plain case therefore
never answers anything the route would not: it accepts a subset of what the route
accepts, records through the same service, and renders the same shapes (the route's
response model over the same recorded event; domain refusals through the same problem
mapping). The request is timed and logged like any other (``RequestMetrics``' histogram,
route ``/checkouts``).
"""

from __future__ import annotations

import logging
import time
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillflow.engine import Receipt, TillflowError
from tillflow.http.problems import domain_problem
from tillflow.http.services import Services
from tillflow.service.access_tokens import Role
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop import validation
from tillflow.shop.sale.commands import Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut

log = logging.getLogger("tillflow.http")

PATH: Final = "/checkouts"
MOST_TOKEN_LENGTH: Final = 512
_FLAGGED: Final = frozenset({b"transfer-encoding", b"idempotency-key", b"expect"})
"""Headers that send a request down the route: chunked bodies, the header key, 100-continue."""


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str
    quantity: int


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    till_id: str
    lines: list[_Line]
    checkout_id: str | None = None
    at: None = None
    """Only absent or ``null`` here; a time goes down the route (its parsing is pydantic's)."""


class _ReceiptOut(msgspec.Struct):
    token: str
    positions: dict[int, int]
    streams: dict[str, int]


class _Recorded(msgspec.Struct):
    """The route's ``CheckoutRecorded``: ``CheckedOut`` has ``CheckedOutOut``'s fields."""

    checkout: CheckedOut
    receipt: _ReceiptOut


_DECODER: Final = msgspec.json.Decoder(_Body)
_ENCODER: Final = msgspec.json.Encoder()


def plain_checkout(body: bytes) -> Checkout | None:
    """The command a body asks for, if it is the plain case (see the module docstring);
    ``None`` for anything the route must look at (including everything it refuses)."""
    try:
        decoded = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if decoded.checkout_id is None or not 1 <= len(decoded.lines) <= validation.MAX_LINES:
        return None
    lines = []
    try:
        validation.identifier("checkout_id", decoded.checkout_id)
        validation.identifier("till_id", decoded.till_id)
        for line in decoded.lines:
            validation.identifier("product_id", line.product_id)
            validation.quantity("quantity", line.quantity)
            lines.append(LineRequest(line.product_id, line.quantity))
    except TillflowError:
        return None
    return Checkout(decoded.checkout_id, decoded.till_id, lines)


def recorded_body(recorded: CheckedOut, receipt: Receipt) -> bytes:
    """The 201 body: the checkout as recorded and its receipt (the route's shape)."""
    out = _ReceiptOut(encode_receipt(receipt), dict(receipt.positions), dict(receipt.streams))
    return _ENCODER.encode(_Recorded(recorded, out))


class CheckoutFastPath:
    """ASGI middleware answering the plain ``POST /checkouts`` itself; see the module
    docstring. ``limit``: the body limit (bytes) of the app's ``BodyLimit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        authorization = self._plain_head(scope)
        if authorization is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        services = getattr(scope["app"].state, "services", None)
        command = None
        if (
            len(body) <= self.limit
            and isinstance(services, Services)
            and _is_till(services, authorization)
        ):
            command = plain_checkout(body)  # only with a valid token is the body looked at
        if command is None or not isinstance(services, Services):
            await self.app(scope, _replay(body, receive), send)
            return
        status = 500
        try:
            status = await self._checkout(scope, receive, send, services, command)
        finally:
            elapsed = time.perf_counter() - started
            services.metrics.observe_request("POST", PATH, status, elapsed)
            log.info("POST %s %d %.1f ms", PATH, status, elapsed * 1000)

    def _plain_head(self, scope: Scope) -> str | None:
        """The ``Authorization`` header of a request whose head is the plain case, else
        ``None``."""
        if scope["query_string"]:
            return None
        authorization = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return None
                authorization = value
            elif name == b"content-type":
                if content_type is not None:
                    return None
                content_type = value
            elif name == b"content-length":
                if length is not None:
                    return None
                length = value
            elif name in _FLAGGED:
                return None
        if (
            authorization is None
            or content_type != b"application/json"
            or length is None
            or not length.isdigit()
            or not 0 < int(length) <= self.limit
        ):
            return None
        return bytes(authorization).decode("latin-1")

    @staticmethod
    async def _checkout(
        scope: Scope, receive: Receive, send: Send, services: Services, command: Checkout
    ) -> int:
        """Record ``command`` and answer; the status answered."""
        try:
            receipt, recorded = await services.shop.sale.checkout_recorded_async(command)
        except TillflowError as error:
            response = domain_problem(Request(scope), error)
            await response(scope, receive, send)
            return response.status_code
        services.metrics.latency.appended(receipt)
        content = recorded_body(recorded, receipt)
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [
                    (b"content-length", b"%d" % len(content)),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        return 201


def _is_till(services: Services, authorization: str) -> bool:
    """Whether ``authorization`` is ``Bearer <an active till token>`` (the route's
    ``RoleGuard`` decides, and answers, every other case)."""
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MOST_TOKEN_LENGTH:
        return False
    token = services.tokens.authenticate(secret)
    return token is not None and token.active and token.role == Role.TILL


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` first (as one message), then the server's messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
