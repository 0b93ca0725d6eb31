"""Status routes: every processor's progress and the Prometheus metrics (managers and
viewers: a scraper uses a viewer token), and a liveness probe (no token)."""

from __future__ import annotations

from typing import Literal

import msgspec
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tillflow.engine import EventStore, ProcessorStatistics
from tillflow.engine.dead_letters import parked_keys, tally
from tillflow.engine.postgres.leases import LeaseOverview
from tillflow.http.auth import VIEWERS, GuardedRoute, require
from tillflow.http.leases import lease_overview
from tillflow.http.problems import problem_responses
from tillflow.http.services import Services, ServicesDep

router = APIRouter(tags=["status"], route_class=GuardedRoute)


class ProcessorOut(BaseModel):
    """One processor on one lane, now. ``state``: starting, running, waiting (on the
    barrier: ``waiting_on`` names the upstream processor), idle (caught up), retrying,
    degraded (the database is away: retrying with backoff), failed, stopped, elsewhere
    (run by another process), or stalled (behind without progress for ``stall_after``
    seconds: ``waiting_on`` names the upstream that holds it, if one does)."""

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
    stalled_seconds: float = Field(
        default=0.0,
        description="Seconds behind the head without the checkpoint moving (0 when caught "
        "up); from the server's stall_after on, the state is stalled.",
    )
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

    fenced_commits: int | None = Field(
        default=None,
        description="PostgreSQL: batches of this lane refused, nothing written, because "
        "their worker had lost the lease (any worker, ever).",
    )
    parked_keys: int = Field(
        default=0, description="Keys parked on this lane (see GET /dead-letters)."
    )
    parked_events: int = Field(
        default=0, description="Events parked or held behind a parked key on this lane."
    )
    oldest_parked_at: float | None = Field(
        default=None, description="When the oldest key parked on this lane was (Unix time)."
    )

    @classmethod
    def of(cls, statistics: ProcessorStatistics, after: tuple[str, ...] = ()) -> ProcessorOut:
        return cls.model_validate({**msgspec.to_builtins(statistics), "after": list(after)})


class WorkerOut(BaseModel):
    """PostgreSQL: a live worker (or the holder of an unexpired lease) and its lanes."""

    worker: str = Field(description="Its id: host, pid and a random part.")
    lanes: dict[str, list[int]] = Field(
        description="Per processor group, the lanes whose unexpired lease it holds."
    )
    lease_expires_in: float | None = Field(
        description="Seconds to the soonest expiry among its leases by the database clock "
        "(it renews them every third of its TTL); null when it holds none."
    )


class StoreOut(BaseModel):
    """The database as this server's processors see it."""

    state: Literal["ok", "degraded"] = Field(
        description="degraded: it cannot be reached; the processors retry with backoff and "
        "resume by themselves (figures above are the last seen)."
    )
    since: float | None = Field(description="When the current outage began (Unix time).")
    seconds: float = Field(description="How long the current outage has lasted.")
    last_error: str | None = Field(description="The latest database error (no password).")
    retries: int = Field(description="Database errors waited out, ever.")
    outages: int = Field(description="Outages begun, ever.")


class ProcessorsOut(BaseModel):
    processors: list[ProcessorOut]
    heads: dict[int, int]
    stall_after: float = Field(
        default=0.0,
        description="Seconds a lane may be behind without progress before it is stalled.",
    )
    store: StoreOut | None = Field(
        default=None, description="Whether the database answers this server's processors."
    )
    leased: bool = Field(
        default=False,
        description="Whether lanes are leased to workers (PostgreSQL: see workers); false: "
        "one process runs every lane (SQLite, memory).",
    )
    workers: list[WorkerOut] = Field(
        default_factory=list, description="PostgreSQL: the live workers, by id."
    )
    unheld: dict[str, list[int]] = Field(
        default_factory=dict,
        description="PostgreSQL: per processor group, the lanes no worker holds now "
        "(never taken, resigned or expired).",
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the database cannot be reached or written for now (its "
        "processors and callers retry; see GET /processors); the server itself is alive."
    )


def processors_out(services: Services) -> ProcessorsOut:
    """Every processor's statistics and the lane heads, now; on PostgreSQL with each lane's
    lease (owner, epoch, expiry, fenced batches), the live workers and the lanes nobody
    holds."""
    store = services.store
    health = services.runtime.health
    stall_after = services.runtime.stall_after
    processors = [
        ProcessorOut.of(row, services.runtime.processors[row.processor].after)
        for row in services.runtime.statistics()
    ]
    status = StoreOut.model_validate(msgspec.to_builtins(health.status()))
    if health.degraded:  # the figures last seen, without waiting on the database
        heads: dict[int, int] = {}
        for row in processors:
            heads[row.lane] = max(row.head, heads.get(row.lane, 0))
        return ProcessorsOut(
            processors=processors, heads=heads, stall_after=stall_after, store=status
        )
    _add_parked(processors, store, list(services.runtime.processors))
    overview = lease_overview(store)
    answer = ProcessorsOut(
        processors=processors, heads=store.heads(), stall_after=stall_after, store=status
    )
    if overview is not None:
        _add_leases(answer, overview)
    return answer


def _add_parked(processors: list[ProcessorOut], store: EventStore, names: list[str]) -> None:
    counted = tally(parked_keys(store, names))
    for out in processors:
        parked = counted.get((out.processor, out.lane))
        if parked is not None:
            out.parked_keys, out.parked_events = parked.keys, parked.events
            out.oldest_parked_at = parked.oldest_at


def _add_leases(answer: ProcessorsOut, overview: LeaseOverview) -> None:
    leases = {(row.processor, row.lane): row for row in overview.leases}
    unheld: dict[str, list[int]] = {}
    for out in answer.processors:
        lease = leases.get((out.processor, out.lane))
        out.fenced_commits = overview.fenced.get((out.processor, out.lane), 0)
        if lease is not None and lease.owner is not None:
            out.owner, out.epoch, out.lease_expires_in = lease.owner, lease.epoch, lease.remaining
        if lease is None or not lease.held:
            unheld.setdefault(out.processor, []).append(out.lane)
    answer.leased = True
    answer.unheld = unheld
    answer.workers = [
        WorkerOut(worker=held.worker, lanes=held.lanes, lease_expires_in=held.expires_in)
        for held in overview.holdings()
    ]


@router.get(
    "/processors",
    summary="Every processor's checkpoint, head, lag, barrier and state",
    dependencies=[require(VIEWERS, "read the status")],
    responses=problem_responses(401, 403),
)
async def processors(services: ServicesDep) -> ProcessorsOut:
    return processors_out(services)


@router.get("/health", summary="Liveness and the database's state (no token needed)")
async def health(request: Request) -> Health:
    services: Services | None = getattr(request.app.state, "services", None)
    degraded = services is not None and services.runtime.health.degraded
    return Health(status="degraded" if degraded else "ok")


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
