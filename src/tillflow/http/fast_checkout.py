"""``POST /checkouts`` without the framework's per-request work (routing, dependency
solving, FastAPI's body handling, the body limit's layer) for the request a till sends
all day: a plain ASGI middleware just inside the request metrics.

::

    POST /checkouts ─► CheckoutFastPath ─┬─ the plain case ─► ring_up ─► 201 / problem
                                         └─ anything else ─► the FastAPI route (body replayed)

It decides nothing itself: it calls the route's guard (:data:`~tillflow.http.checkouts.RING_UP`),
the route's model (:class:`~tillflow.http.checkouts.CheckoutIn`) and command
(:func:`~tillflow.http.checkouts.checkout_command`), and the route's
:func:`~tillflow.http.checkouts.ring_up` (the sale service's one checkout path and the one
reply builder); the service's refusals go through the app's own problem mapping.

The plain case is a request whose head needs nothing from the framework: no query string,
``Content-Type: application/json`` exactly, a ``Content-Length`` within the body limit, no
``Idempotency-Key``, ``Transfer-Encoding`` or ``Expect`` header; and which the guard admits
and the model accepts. Anything the guard or the model refuses, and every other request,
goes on with the body already read, and the route answers it by the same rules. The fast
path never answers anything the route would not: the route parses JSON as Python does,
the fast path with pydantic's parser, and a body either refuses is left to the route.
"""

from __future__ import annotations

from typing import Final

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillflow.engine import TillflowError
from tillflow.http.checkouts import (
    CHECKOUT_ROUTE,
    RING_UP,
    CheckoutIn,
    checkout_command,
    ring_up,
)
from tillflow.http.problems import domain_problem
from tillflow.http.services import services_of
from tillflow.shop.sale.commands import Checkout

PATH: Final = "/checkouts"
_FLAGGED: Final = frozenset({b"transfer-encoding", b"idempotency-key", b"expect"})
"""Headers that send a request down the route: chunked bodies, the header key, 100-continue."""


def plain_checkout(body: bytes) -> Checkout | None:
    """The command ``body`` asks for when the route's model accepts it as a checkout that
    needs no header; ``None`` otherwise (the route then answers)."""
    try:
        return checkout_command(CheckoutIn.model_validate_json(body), None)
    except (ValidationError, TillflowError):
        return None


def _admitted(request: Request) -> bool:
    """Whether the route's guard admits ``request`` (else the route answers 401 / 403)."""
    try:
        RING_UP.check(request)
    except (HTTPException, TillflowError):  # the route answers (401 / 403, 503, ...)
        return False
    return True


class CheckoutFastPath:
    """ASGI middleware answering the plain ``POST /checkouts`` itself; see the module
    docstring. Goes just inside ``RequestMetrics`` (which times and logs it, and tracks
    the checkout's way to the report) and outside ``BodyLimit``: ``limit`` is the body
    limit (a larger or unannounced body goes on, and ``BodyLimit`` answers it)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _plain_head(scope, self.limit):
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
        request = Request(scope)
        command = plain_checkout(body) if _admitted(request) else None  # token first
        if command is None:
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = CHECKOUT_ROUTE  # for the request metrics: its route template
        try:
            response = await ring_up(services_of(request), command)
        except TillflowError as refusal:
            response = domain_problem(request, refusal)
        await response(scope, receive, send)


def _plain_head(scope: Scope, limit: int) -> bool:
    """Whether the request's head is the plain case (see the module docstring)."""
    if (
        scope["type"] != "http"
        or scope["path"] != PATH
        or scope["method"] != "POST"
        or scope["query_string"]
    ):
        return False
    content_type = length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is not None:
                return False
            content_type = value
        elif name == b"content-length":
            if length is not None:
                return False
            length = value
        elif name in _FLAGGED:
            return False
    return (
        content_type == b"application/json"
        and length is not None
        and length.isdigit()
        and 0 < int(length) <= limit
    )


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
