"""Status routes: every processor's progress and the Prometheus metrics (managers and
viewers: a scraper uses a viewer token), and a liveness probe (no token)."""

from __future__ import annotations

from typing import Literal

import msgspec
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from tillflow.engine import ProcessorStatistics
from tillflow.engine.postgres import PostgresEventStore
from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.services import Services, ServicesDep

router = APIRouter(tags=["status"], route_class=GuardedRoute)


class ProcessorOut(BaseModel):
    """One processor on one lane, now. ``state``: starting, running, waiting (on the
    barrier: ``waiting_on`` names the upstream processor), idle (caught up), retrying,
    failed, stopped, or elsewhere (run by another process)."""

    processor: str
    lane: int
    state: str
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float
    throughput: float = Field(description="Positions scanned per second, recently.")
    scanned: int
    handled: int
    batches: int
    last_batch: int
    waiting_on: str | None
    error: str | None
    failed_event: str | None
    failed_position: int | None
    failures: int
    after: list[str] = Field(
        default_factory=list,
        description="The processors whose checkpoints bound this one's barrier (declared).",
    )
    owner: str | None = Field(
        default=None, description="PostgreSQL: the worker holding this lane's lease, if any."
    )
    epoch: int | None = Field(default=None, description="PostgreSQL: the lease's epoch.")
    lease_expires_in: float | None = Field(
        default=None,
        description="PostgreSQL: seconds to the lease's expiry by the database clock "
        "(negative: expired).",
    )

    @classmethod
    def of(cls, statistics: ProcessorStatistics, after: tuple[str, ...] = ()) -> ProcessorOut:
        return cls.model_validate({**msgspec.to_builtins(statistics), "after": list(after)})


class ProcessorsOut(BaseModel):
    processors: list[ProcessorOut]
    heads: dict[int, int]


class Health(BaseModel):
    status: Literal["ok"]


def processors_out(services: Services) -> ProcessorsOut:
    """Every processor's statistics and the lane heads, now; on PostgreSQL with each lane's
    lease (owner, epoch, expiry)."""
    store = services.store
    leases = (
        {(row.processor, row.lane): row for row in store.leases.rows() if row.owner is not None}
        if isinstance(store, PostgresEventStore)
        else {}
    )
    processors: list[ProcessorOut] = []
    for row in services.runtime.statistics():
        out = ProcessorOut.of(row, services.runtime.processors[row.processor].after)
        lease = leases.get((row.processor, row.lane))
        if lease is not None:
            out.owner, out.epoch, out.lease_expires_in = lease.owner, lease.epoch, lease.remaining
        processors.append(out)
    return ProcessorsOut(processors=processors, heads=store.heads())


@router.get(
    "/processors",
    summary="Every processor's checkpoint, head, lag, barrier and state",
    dependencies=[require(VIEWERS, "read the status")],
    responses=problem_responses(401, 403),
)
async def processors(services: ServicesDep) -> ProcessorsOut:
    return processors_out(services)


@router.get("/health", summary="Liveness (no token needed)")
async def health() -> Health:
    return Health(status="ok")


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    dependencies=[require(VIEWERS, "read metrics")],
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403),
    },
    response_class=Response,
)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=PROMETHEUS_TEXT)
