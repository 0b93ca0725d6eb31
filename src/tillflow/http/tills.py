"""Till routes (managers): open a till with a float, close it with the counted cash, read
its X report (the open session so far) and a session's Z report (as closed).

Opening or closing is keyed by ``session_id`` (in the body or the ``Idempotency-Key``
header): a retry answers the first call's receipt. Opening an open till or closing a till
that is not open is 409. A close first waits (at most :data:`CLOSE_WAIT` seconds) until the
cash-up has passed every event recorded so far, so that the Z report holds every sale rung
up before the close whatever lane it is on. Reports are read from the ``tills`` processor
with its freshness; ``?wait_for=`` a write's receipt token waits for it first, as the report
does.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tillflow.engine import EventStore, Receipt
from tillflow.http.auth import MANAGERS, GuardedRoute, require
from tillflow.http.idempotency import IdempotencyKey, optional_key
from tillflow.http.problems import problem_responses
from tillflow.http.report import AsOfOut, FreshnessOut, ReadYourWrites, awaited, freshness_out
from tillflow.http.schemas import Cash, Identifier, ReceiptOut, RequestBody
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.sale.events import till_stream
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill, TillClosed, TillOpened
from tillflow.shop.tills.queries import TillReport
from tillflow.shop.tills.rows import Takings, TillSession

router = APIRouter(prefix="/tills", tags=["tills"], route_class=GuardedRoute)

TillId = Annotated[
    Identifier,
    Path(description="The till's id.", openapi_examples={"front": {"value": "till-1"}}),
]
SessionId = Annotated[Identifier, Path(description="The session's id.")]
WRITE = problem_responses(400, 401, 403, 409, 413, 415, 422)
READ = problem_responses(401, 403, 404, 422)
CLOSE_WAIT: Final = 5.0
"""Seconds a close waits at most for the cash-up to pass every sale recorded before it."""


class OpenIn(RequestBody):
    float: Cash = Field(description="Cents put in the drawer to give change from.")
    session_id: Identifier | None = Field(
        default=None,
        description="Names the session and makes a retry harmless (or send an "
        "Idempotency-Key header); omitted, one is made up.",
    )


class CloseIn(RequestBody):
    counted: Cash = Field(description="Cents counted in the drawer.")
    session_id: Identifier | None = Field(
        default=None,
        description="The open session (checked); makes a retry harmless (or send an "
        "Idempotency-Key header).",
    )


class SessionChanged(BaseModel):
    """The session opened or closed, and the receipt of the write."""

    till_id: str
    session_id: str
    receipt: ReceiptOut


class TakingsOut(BaseModel):
    """Money through the till, by tender, in cents. ``cash`` is what cash paid towards
    totals: ``cash_handed`` less ``change``."""

    sales: int
    returns: int
    declines: int = Field(description="Cards the terminal declined (no sale).")
    cash: int
    card: int
    cash_handed: int
    change: int
    cash_refunds: int
    card_refunds: int


class SessionOut(BaseModel):
    """A session: its takings, the cash expected in the drawer (float + cash − cash
    refunds) and, once closed, the cash counted and the difference (counted − expected)."""

    till_id: str
    session_id: str
    float: int
    opened_at: str | None
    closed_at: str | None
    takings: TakingsOut
    expected_cash: int
    counted: int | None
    difference: int | None = Field(description="Counted − expected; negative: cash short.")
    late: TakingsOut = Field(
        description="Sales naming the session that reached the cash-up after its close "
        "(rung up while it was being closed): not in the figures above."
    )
    as_of: AsOfOut


class TillReportOut(BaseModel):
    """An X report (``final`` false: the open session so far, or none) or a Z report."""

    till_id: str
    open_session: str | None
    last_session: str | None
    session: SessionOut | None
    final: bool
    outside: TakingsOut = Field(description="What the till took outside any session.")
    freshness: FreshnessOut


def _takings(takings: Takings) -> TakingsOut:
    return TakingsOut.model_validate(takings, from_attributes=True)


def _session(row: TillSession) -> SessionOut:
    return SessionOut(
        till_id=row.till_id,
        session_id=row.session_id,
        float=row.float,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        takings=_takings(row.takings),
        expected_cash=row.expected_cash,
        counted=row.counted,
        difference=row.difference,
        late=_takings(row.late),
        as_of=AsOfOut.model_validate(row.as_of, from_attributes=True),
    )


def till_report_out(store: EventStore, report: TillReport) -> TillReportOut:
    """The JSON form of an X or Z report read from ``store``."""
    till = report.till
    return TillReportOut(
        till_id=till.till_id,
        open_session=till.open_session,
        last_session=till.last_session,
        session=None if report.session is None else _session(report.session),
        final=report.final,
        outside=_takings(till.outside),
        freshness=freshness_out(store, report.freshness),
    )


def _changed(services: Services, till_id: str, receipt: Receipt) -> SessionChanged:
    stream = till_stream(till_id)
    version = receipt.streams[stream]
    [event] = services.store.read_stream(stream, version - 1, version)
    recorded: TillOpened | TillClosed = (
        event.decode(TillOpened) if event.type == "TillOpened" else event.decode(TillClosed)
    )
    return SessionChanged(
        till_id=till_id, session_id=recorded.session_id, receipt=ReceiptOut.of(receipt)
    )


@router.post(
    "/{till_id}/open",
    status_code=201,
    summary="Open a till with a float",
    dependencies=[require(MANAGERS, "open tills")],
    responses=WRITE,
)
async def open_till(
    till_id: TillId, body: OpenIn, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> SessionChanged:
    session_id = optional_key("session_id", body.session_id, idempotency_key)
    command = OpenTill(till_id, body.float, session_id)
    receipt = await run_in_threadpool(services.shop.sale.tills.open, command)
    return _changed(services, till_id, receipt)


@router.post(
    "/{till_id}/close",
    summary="Close a till with the cash counted in it",
    dependencies=[require(MANAGERS, "close tills")],
    responses=WRITE,
)
async def close_till(
    till_id: TillId, body: CloseIn, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> SessionChanged:
    session_id = optional_key("session_id", body.session_id, idempotency_key)
    command = CloseTill(till_id, body.counted, session_id)
    if services.shop.sale.tills.state(till_id).open_session is not None:  # else: refused
        await services.shop.tills.caught_up(services.runtime, CLOSE_WAIT)
    receipt = await run_in_threadpool(services.shop.sale.tills.close, command)
    return _changed(services, till_id, receipt)


@router.get(
    "/{till_id}/x-report",
    summary="A till's X report: its open session so far",
    dependencies=[require(MANAGERS, "read till reports")],
    responses=READ,
)
async def x_report(till_id: TillId, services: ServicesDep, wait: ReadYourWrites) -> TillReportOut:
    reader = services.shop.tills
    waited = await reader.wait(services.runtime, awaited(services.store, wait), wait.timeout)
    return till_report_out(services.store, reader.x_report(till_id, waited))


@router.get(
    "/{till_id}/z-reports/{session_id}",
    summary="A closed session's Z report",
    dependencies=[require(MANAGERS, "read till reports")],
    responses=READ,
)
async def z_report(
    till_id: TillId, session_id: SessionId, services: ServicesDep, wait: ReadYourWrites
) -> TillReportOut:
    reader = services.shop.tills
    waited = await reader.wait(services.runtime, awaited(services.store, wait), wait.timeout)
    return till_report_out(services.store, reader.z_report(till_id, session_id, waited))
