"""The tillflow side of every case: appends, group commit, and the chain of processors.

Each function opens a fresh :class:`SqliteEventStore` (durability ``full``) at the path it
is given, times only the work being measured, checks that the work really happened, and
closes the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from bench import workload
from tillflow.engine import (
    DrainTimeout,
    Processor,
    ProcessorStopped,
    RecordedEvent,
    Runtime,
    Session,
    SqliteEventStore,
)

CHAIN: Final = ("tally", "bulk", "audit")
"""The processors of the chain, each ``after`` the one before it."""

Status = Literal["ok", "wrong", "stalled", "failed"]


def _check_head(store: SqliteEventStore, expected: int, what: str) -> None:
    head = store.head(0)
    if head != expected:
        raise AssertionError(f"{what}: the log holds {head} events, not {expected}")


# -- 1. batched appends --------------------------------------------------------------------


def batched_append_rate(path: Path, batches: int, batch_size: int) -> float:
    """Events per second: ``batches`` calls of ``store.append(stream, [batch_size events])``,
    one after the other, each durable before it returns."""
    prepared = [
        (workload.stream_name("batch", batch), workload.events(batch * batch_size, batch_size))
        for batch in range(batches)
    ]
    store = SqliteEventStore(path, durability="full")
    try:
        started = time.perf_counter()
        for stream, batch_events in prepared:
            store.append(stream, batch_events)
        elapsed = time.perf_counter() - started
        _check_head(store, batches * batch_size, "batched appends")
    finally:
        store.close()
    return batches * batch_size / elapsed


# -- 2. group commit -----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCommitRun:
    appends: int
    seconds: float
    commits: int

    @property
    def rate(self) -> float:
        return self.appends / self.seconds

    @property
    def rows_per_commit(self) -> float:
        return self.appends / max(self.commits, 1)


async def group_commit(path: Path, writers: int, appends_each: int) -> GroupCommitRun:
    """``writers`` asyncio tasks, each awaiting ``appends_each`` durable one-event appends
    (``store.append_async``) to its own stream, all at once."""
    store = SqliteEventStore(path, durability="full")
    try:
        single = [workload.events(writer, 1) for writer in range(writers)]

        async def write(writer: int) -> None:
            stream = workload.stream_name("writer", writer)
            for _ in range(appends_each):
                await store.append_async(stream, single[writer])

        before = store.writer_statistics()
        started = time.perf_counter()
        await asyncio.gather(*(write(writer) for writer in range(writers)))
        elapsed = time.perf_counter() - started
        after = store.writer_statistics()
        _check_head(store, writers * appends_each, "group commit")
    finally:
        store.close()
    return GroupCommitRun(writers * appends_each, elapsed, after["batches"] - before["batches"])


# -- 3. the chain --------------------------------------------------------------------------


@dataclass
class _Seen:
    """What the last processor counts in plain memory (a local variable, not a view)."""

    events: int = 0


def chain_processors(seen: _Seen) -> list[Processor]:
    """``tally`` → ``bulk`` → ``audit``, each behind a barrier on the one before.

    - ``tally`` (all events): a per-sku counter row for each ``Sold`` event;
    - ``bulk`` (``Sold`` only): adds the units of sales of ≥ ``BULK_QUANTITY`` per sku;
    - ``audit`` (all events): counts every event in memory, ``Noted`` ones in a view row.
    """

    def tally(event: RecordedEvent, session: Session) -> None:
        if event.type == workload.SOLD:
            sku = event.decode(workload.Sale).sku
            session.put("sold", sku, (session.get("sold", sku) or 0) + 1)

    def bulk(event: RecordedEvent, session: Session) -> None:
        sale = event.decode(workload.Sale)
        if sale.qty >= workload.BULK_QUANTITY:
            session.put("bulk", sale.sku, (session.get("bulk", sale.sku) or 0) + sale.qty)

    def audit(event: RecordedEvent, session: Session) -> None:
        seen.events += 1
        if event.type == workload.NOTED:
            session.put("notes", "all", (session.get("notes", "all") or 0) + 1)

    first, second, third = CHAIN
    return [
        Processor(first, tally),
        Processor(second, bulk, types=frozenset({workload.SOLD}), after=(first,)),
        Processor(third, audit, after=(second,)),
    ]


@dataclass
class ChainRun:
    """One end-to-end run of the chain. Only an ``ok`` run's time means anything."""

    status: Status
    events: int
    seconds: float
    detail: str = ""
    batches: dict[str, int] = field(default_factory=dict)
    """Transactions each processor committed."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _view(store: SqliteEventStore, view: str) -> dict[str, Any]:
    return {key: msgspec.json.decode(value) for key, value in store.view_rows(view)}


def verify_chain(store: SqliteEventStore, truth: workload.Truth, seen: _Seen) -> list[str]:
    """Every way the store and the processors disagree with ``truth`` (empty: all true)."""
    problems: list[str] = []
    head = store.head(0)
    if head != truth.events:
        problems.append(f"head {head} ≠ {truth.events}")
    for name in CHAIN:
        checkpoint = store.checkpoint(name, 0)
        if checkpoint != truth.events:
            problems.append(f"{name} checkpoint {checkpoint} ≠ {truth.events}")
    if _view(store, "sold") != truth.sold:
        problems.append("tally view ≠ truth")
    if _view(store, "bulk") != truth.bulk:
        problems.append("bulk view ≠ truth")
    notes = _view(store, "notes").get("all", 0)
    if notes != truth.notes:
        problems.append(f"audit notes {notes} ≠ {truth.notes}")
    if seen.events != truth.events:
        problems.append(f"audit saw {seen.events} events ≠ {truth.events}")
    return problems


async def run_chain(
    path: Path,
    count: int,
    *,
    batch_size: int = 1000,
    producers: int = 2,
    drain_timeout: float | None = None,
    on_appended: Callable[[int], None] | None = None,
    on_drained: Callable[[], None] | None = None,
) -> ChainRun:
    """Append ``count`` events (``producers`` tasks, ``batch_size`` events per append) while
    the chain processes them in one :class:`Runtime`; time from the first append until
    ``runtime.drain()`` returns, then check every figure against the truth.

    ``on_appended(total)`` is called once with 0 before the clock starts, then after every
    append with the number appended so far; ``on_drained()`` once the drain returned, while
    the store and the runtime are still open (both are for sampling memory).
    A drain that times out is ``stalled``, a processor that stopped or an append that
    raised is ``failed``, figures that disagree with the truth are ``wrong``.
    """
    truth = workload.truth(count)
    seen = _Seen()
    timeout = drain_timeout if drain_timeout is not None else max(60.0, count / 5_000)
    batch_count = -(-count // batch_size)
    appended = 0

    async def produce(runtime: Runtime, first_batch: int) -> None:
        nonlocal appended
        for batch in range(first_batch, batch_count, producers):
            start = batch * batch_size
            size = min(batch_size, count - start)
            await runtime.append(workload.stream_name("till", batch), workload.events(start, size))
            appended += size
            if on_appended is not None:
                on_appended(appended)

    store = SqliteEventStore(path, durability="full")
    try:
        runtime = Runtime(store, chain_processors(seen))
        status: Status = "ok"
        detail = ""
        async with runtime:
            if on_appended is not None:
                on_appended(0)
            started = time.perf_counter()
            try:
                async with asyncio.TaskGroup() as group:
                    for first in range(producers):
                        group.create_task(produce(runtime, first))
                await runtime.drain(timeout=timeout)
                elapsed = time.perf_counter() - started
                if on_drained is not None:
                    on_drained()
            except DrainTimeout as error:
                status, detail = "stalled", str(error)
            except ProcessorStopped as error:
                status, detail = "failed", str(error)
            except Exception as error:
                status, detail = "failed", _describe(error)
            if status != "ok":
                elapsed = time.perf_counter() - started
        batches = {stats.processor: stats.batches for stats in runtime.statistics()}
        if status == "ok":
            problems = verify_chain(store, truth, seen)
            if problems:
                status, detail = "wrong", "; ".join(problems)
    finally:
        store.close()
    return ChainRun(status, count, elapsed, detail, batches)
