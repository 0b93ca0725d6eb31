"""Dead-letter routes: parked events (managers and viewers read; managers retry or skip).

``GET /dead-letters`` lists every parked key of the shop's processors; ``GET
/dead-letters/{id}`` shows one with its traceback, the events held behind it and the
requests made; ``POST /dead-letters/{id}/retry`` and ``…/skip`` record a request in the
manager's name (a skip needs a ``reason``), which the processor carries out at its next
step. An unknown id is 404 ``unknown-dead-letter``; one already resolved is 409
``dead-letter-resolved``; one with a request pending, or only held behind an upstream's, is
409 ``dead-letter-busy``: nothing is recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tillflow.engine import EventStore, InvalidEvent
from tillflow.engine.dead_letters import (
    MAX_TEXT,
    Action,
    ParkedKey,
    held_events,
    locate,
    parked_keys,
    request,
)
from tillflow.http.auth import MANAGERS, PRINCIPAL_KEY, VIEWERS, GuardedRoute, Principal, require
from tillflow.http.problems import problem_responses
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.errors import InvalidField

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], route_class=GuardedRoute)

DeadLetterId = Annotated[
    str, Path(max_length=140, description="The dead letter: ``<processor>:<event id>``.")
]


class DeadLetterOut(BaseModel):
    """A parked key: its head event (which failed, unless it is only held ``behind`` an
    upstream processor's dead letter), the events held after it, the attempts."""

    id: str
    processor: str
    lane: int
    key: str
    position: int
    event_type: str
    stream: str
    parked_at: float = Field(description="Unix seconds when the key was parked.")
    attempts: int
    error: str
    held: int = Field(description="Events held behind the head, waiting their turn.")
    behind: str | None
    pending: Action | None = Field(description="A retry or skip asked, not yet carried out.")

    @classmethod
    def of(cls, parked: ParkedKey) -> DeadLetterOut:
        letter = parked.letter
        return cls(
            id=parked.id,
            processor=parked.processor,
            lane=letter.lane,
            key=letter.key,
            position=letter.position,
            event_type=letter.event_type,
            stream=letter.stream,
            parked_at=letter.parked_at,
            attempts=letter.attempts,
            error=letter.error,
            held=len(letter.held),
            behind=letter.behind,
            pending=parked.pending,
        )


class HeldOut(BaseModel):
    position: int
    type: str
    stream: str
    id: str


class RequestOut(BaseModel):
    by: str
    reason: str
    at: float


class DeadLetterDetail(DeadLetterOut):
    traceback: str
    held_events: list[HeldOut]
    requests: list[RequestOut]


class RetryIn(BaseModel):
    """``{}``, or why (recorded)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=MAX_TEXT)


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=MAX_TEXT, description="Why it may be skipped.")


def _names(services: Services) -> list[str]:
    return [declared.name for declared in services.shop.processors]


def _detail(store: EventStore, names: list[str], dead_letter: str) -> DeadLetterDetail:
    parked = locate(store, names, dead_letter)
    held = [
        HeldOut(position=event.position, type=event.type, stream=event.stream, id=event.describe())
        for event in held_events(store, parked.letter)
    ]
    asked = [RequestOut(by=each.by, reason=each.reason, at=each.at) for each in parked.requests]
    return DeadLetterDetail(
        **DeadLetterOut.of(parked).model_dump(),
        traceback=parked.letter.traceback,
        held_events=held,
        requests=asked,
    )


LIST: dict[int | str, dict[str, Any]] = problem_responses(401, 403, 422, 503)
READ: dict[int | str, dict[str, Any]] = problem_responses(401, 403, 404, 422, 503)
WRITE: dict[int | str, dict[str, Any]] = problem_responses(
    400, 401, 403, 404, 409, 413, 415, 422, 503
)


@router.get(
    "",
    summary="List parked keys",
    dependencies=[require(VIEWERS, "read dead letters")],
    responses=LIST,
)
async def list_dead_letters(services: ServicesDep) -> list[DeadLetterOut]:
    found = await run_in_threadpool(parked_keys, services.store, _names(services))
    return [DeadLetterOut.of(parked) for parked in found]


@router.get(
    "/{dead_letter_id}",
    summary="Show a dead letter",
    dependencies=[require(VIEWERS, "read dead letters")],
    responses=READ,
)
async def show_dead_letter(dead_letter_id: DeadLetterId, services: ServicesDep) -> DeadLetterDetail:
    return await run_in_threadpool(_detail, services.store, _names(services), dead_letter_id)


async def _ask(
    http: Request, services: Services, dead_letter: str, action: Action, reason: str
) -> DeadLetterOut:
    principal = http.scope[PRINCIPAL_KEY]
    assert isinstance(principal, Principal)
    store, names = services.store, _names(services)

    def ask() -> DeadLetterOut:
        parked = locate(store, names, dead_letter)
        try:
            request(store, parked.processor, parked.letter.event_id, action, principal.name, reason)
        except InvalidEvent as refused:  # a reason of blanks
            raise InvalidField(refused.field, refused.value, refused.reason) from None
        # as asked: the processor may carry it out before a second read
        return DeadLetterOut.of(dataclasses.replace(parked, pending=action))

    return await run_in_threadpool(ask)


@router.post(
    "/{dead_letter_id}/retry",
    status_code=202,
    summary="Retry a dead letter, then the events held behind it",
    dependencies=[require(MANAGERS, "retry dead letters")],
    responses=WRITE,
)
async def retry(
    dead_letter_id: DeadLetterId, body: RetryIn, http: Request, services: ServicesDep
) -> DeadLetterOut:
    return await _ask(http, services, dead_letter_id, "retry", body.reason)


@router.post(
    "/{dead_letter_id}/skip",
    status_code=202,
    summary="Skip a dead letter (a reason is required), then handle the held events",
    dependencies=[require(MANAGERS, "skip dead letters")],
    responses=WRITE,
)
async def skip(
    dead_letter_id: DeadLetterId, body: SkipIn, http: Request, services: ServicesDep
) -> DeadLetterOut:
    return await _ask(http, services, dead_letter_id, "skip", body.reason)
