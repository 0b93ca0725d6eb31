"""`tillflow worker` on PostgreSQL: the lanes shared with the other workers by leases."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

from tillflow.engine import EventStore, Runtime
from tillflow.engine.lane_processor import CommitBatch, Turns
from tillflow.engine.leasing import Fence, LeaseKeeper, weights_of
from tillflow.engine.outage import describe_error
from tillflow.engine.postgres import PostgresEventStore

DEFAULT_TTL = 10.0

log = logging.getLogger("tillflow.leasing")


def worker_id() -> str:
    """This process's id among workers: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_keeper(store: EventStore, runtime: Runtime, ttl: float) -> LeaseKeeper | None:
    """A keeper of this worker's share of the lanes of the processors ``runtime`` runs, on
    a store that leases lanes (PostgreSQL); ``None`` on the others (one owner: all lanes)."""
    if not isinstance(store, PostgresEventStore):
        return None

    def fenced(fence: Fence) -> CommitBatch:
        return functools.partial(store.commit_batch, fence=fence)

    lanes = {name: runtime.lanes[name] for name in runtime.running}
    if not lanes:
        return None
    for processors in lanes.values():  # a processor's lanes take turns in one thread
        turns = Turns()
        for lane_processor in processors:
            lane_processor.turns = turns
    return LeaseKeeper(
        store.leases,
        worker_id(),
        lanes,
        ttl,
        fenced,
        health=runtime.health,
        on_taken=runtime.wake,
        # every processor the shop declares, run here or not: all workers weigh alike
        weights=weights_of(runtime.lanes),
    )


@contextlib.asynccontextmanager
async def keeping(keeper: LeaseKeeper | None) -> AsyncIterator[None]:
    """Keep the leases while the block runs; resign them all (at once) when it ends. With
    the database away at the end, the leases are left to expire (within their TTL)."""
    if keeper is None:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.keep(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        try:
            await asyncio.to_thread(keeper.resign)
        except Exception as error:
            log.warning(
                "%s: could not resign the leases (%s); they expire within %.1f s",
                keeper.owner,
                describe_error(error),
                keeper.ttl,
            )


@contextlib.asynccontextmanager
async def leased(
    store: EventStore, runtime: Runtime, ttl: float = DEFAULT_TTL
) -> AsyncIterator[None]:
    """``runtime`` running while it keeps its share of the lanes by leases on a store that
    leases them (PostgreSQL; on the others it runs every lane)."""
    async with runtime, keeping(lease_keeper(store, runtime, ttl)):
        yield


LEASE_COLUMNS = ("owner", "epoch", "lease")


def lease_cells(store: EventStore) -> dict[tuple[str, int], tuple[str, str, str]] | None:
    """Per (processor, lane): its lease's owner, epoch and expiry as operators read them
    (``expires in 2.9 s``, ``expired 1.0 s ago``, ``resigned``); ``None`` on a store
    without leases."""
    if not isinstance(store, PostgresEventStore):
        return None
    cells: dict[tuple[str, int], tuple[str, str, str]] = {}
    for row in store.leases.rows():
        if row.owner is None:
            expiry = "resigned"
        elif row.remaining > 0:
            expiry = f"expires in {row.remaining:.1f} s"
        else:
            expiry = f"expired {-row.remaining:.1f} s ago"
        cells[(row.processor, row.lane)] = (row.owner or "-", str(row.epoch), expiry)
    return cells
