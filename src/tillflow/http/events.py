"""The live stream (server-sent events) of report changes, for the dashboard.

``GET /events/report`` (managers and viewers; the token may come as ``?access_token=``
since a browser's ``EventSource`` cannot send headers) sends:

* ``event: report`` — ``{"full": true, rows, totals, freshness}`` at once, then whenever
  any of it changed, ``{"full": false, rows: <only the rows that changed, maybe none>,
  totals, freshness}``: a checkpoint move that changes no row and a head the report has
  not reached yet are sent too (within about a second), so the freshness a subscriber
  shows is never left behind; at most ``4`` a second (changes in between are merged);
* ``event: processors`` — ``{processors, heads}`` (as ``GET /processors``) about once a
  second;
* ``event: sales`` — today's sales per hour in the shop's time zone with the takings by
  tender (as ``GET /sales/hourly``), at once and whenever they changed (the day rolls over
  at the shop's midnight).

Comments (``: ping``) keep idle connections open. When the server stops, a last
``event: shutdown`` is sent and the stream ends cleanly (a browser reconnects by itself).
The token is checked again every ``TOKEN_INTERVAL`` seconds, not only at connect: once it
is revoked (by this process or another, e.g. ``tillflow token revoke``) a last
``event: revoked`` (``{"reason": …}``) is sent and the stream ends; reconnecting gets 401.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.processors import processors_out
from tillflow.http.report import FreshnessOut, ProductRowOut, TotalsOut, report_out
from tillflow.http.sales import HourlySalesOut, hourly_out
from tillflow.http.services import Services, ServicesDep

router = APIRouter(prefix="/events", tags=["live"], route_class=GuardedRoute)

REPORT_INTERVAL: Final = 0.25
"""At most one report message per this many seconds per stream."""
PROCESSORS_INTERVAL: Final = 1.0
PING: Final = 15
SHUTDOWN_GRACE: Final = 2.0
"""Seconds a stream has to end cleanly once the server is stopping."""
TOKEN_INTERVAL: Final = 1.0
"""Seconds between checks that a stream's token is still active."""


class ReportChange(BaseModel):
    """One ``report`` message."""

    full: bool = Field(description="rows holds every row (first message) or only changes.")
    rows: list[ProductRowOut]
    totals: TotalsOut
    freshness: FreshnessOut


def presented_token(request: Request) -> str:
    """The token ``request`` was let in with (its guard has checked it): the bearer
    header's, else ``?access_token=``'s."""
    header = request.headers.get("authorization")
    if header is not None:
        return header.strip().partition(" ")[2].strip()
    return request.query_params.get("access_token", "")


def token_refusal(services: Services, token: str) -> str | None:
    """Why ``token`` may no longer follow the report (revoked, or unknown to the store),
    or ``None`` while it may. Reads the token book (one cheap query when nothing changed)."""
    found = services.tokens.authenticate(token)
    if found is None:
        return "the token is not known any more"
    if not found.active:
        return f"token {found.name!r} was revoked"
    return None


async def report_stream(
    services: Services, stopping: anyio.Event, token: str
) -> AsyncIterator[ServerSentEvent]:
    """The messages of one subscriber, until it goes away (the response cancels this), the
    server stops (then a last ``event: shutdown``, and the stream ends cleanly) or
    ``token`` is revoked (checked every ``TOKEN_INTERVAL`` seconds; then a last
    ``event: revoked``, and the stream ends)."""
    sent: dict[str, ProductRowOut] = {}
    told: tuple[TotalsOut, FreshnessOut] | None = None
    told_sales: HourlySalesOut | None = None
    generation = services.watch.generation
    last_processors = 0.0
    token_checked = time.monotonic()  # the guard checked it at connect
    full = True
    while not stopping.is_set():
        if time.monotonic() - token_checked >= TOKEN_INTERVAL:
            token_checked = time.monotonic()
            refusal = token_refusal(services, token)
            if refusal is not None:
                yield ServerSentEvent(data=json.dumps({"reason": refusal}), event="revoked")
                return
        report = report_out(services.store, services.shop.report.report())
        rows = [row for row in report.rows if sent.get(row.product_id) != row]
        # the freshness counts too: the report passes events that change no row (Inventory's
        # own, a token created) and the log moves while the report stands still
        if full or rows or (report.totals, report.freshness) != told:
            change = ReportChange(
                full=full, rows=rows, totals=report.totals, freshness=report.freshness
            )
            yield ServerSentEvent(data=change.model_dump_json(), event="report", id=str(generation))
            sent.update((row.product_id, row) for row in rows)
            told = (report.totals, report.freshness)
            full = False
        sales = hourly_out(services)
        if sales != told_sales:
            yield ServerSentEvent(data=sales.model_dump_json(), event="sales")
            told_sales = sales
        if time.monotonic() - last_processors >= PROCESSORS_INTERVAL:
            last_processors = time.monotonic()
            yield ServerSentEvent(
                data=processors_out(services).model_dump_json(), event="processors"
            )
        await asyncio.sleep(REPORT_INTERVAL)  # a rate limit: merge changes in between
        deadline = last_processors + PROCESSORS_INTERVAL
        while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            moved = await services.watch.changed(generation, min(left, REPORT_INTERVAL))
            if moved != generation:
                generation = moved
                break
    yield ServerSentEvent(data='{"reason": "the server is stopping"}', event="shutdown")


SSE_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "A text/event-stream of `report`, `processors` and `sales` events.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **problem_responses(401, 403),
}


@router.get(
    "/report",
    summary="Live report changes (server-sent events)",
    dependencies=[require(VIEWERS, "follow the report", query_token=True)],
    responses=SSE_RESPONSE,
    response_class=EventSourceResponse,
)
async def follow_report(
    request: Request,
    services: ServicesDep,
    access_token: Annotated[
        str | None,
        Query(description="The bearer token, for clients that cannot send headers."),
    ] = None,
) -> EventSourceResponse:
    stopping = anyio.Event()
    return EventSourceResponse(
        report_stream(services, stopping, presented_token(request)),
        ping=PING,
        shutdown_event=stopping,
        shutdown_grace_period=SHUTDOWN_GRACE,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
