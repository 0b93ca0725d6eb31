"""The PostgreSQL backend: lanes dense by construction, group commit per lane.

A fixed number of lanes, chosen when the database is created (default 16, stored in the
schema; opening it with another count is refused with :class:`LaneCountMismatch`). A
stream's lane is :func:`tillflow.engine.lanes.lane_of` of its id. Appends go to their
lane's group committer (one thread and, while it writes, one pooled connection per lane
in use); processor batches commit from the calling thread. How positions stay dense:
:mod:`tillflow.engine.postgres.writer`.

Every session sets ``idle_in_transaction_session_timeout`` and ``lock_timeout``, so an
abandoned transaction cannot hold a lane's head row for long. Reads see committed data
only; :meth:`PostgresEventStore.snapshot` pins one ``REPEATABLE READ`` snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool

from tillflow.engine.errors import StoreClosed, TillflowError
from tillflow.engine.group_commit import GroupCommitter
from tillflow.engine.lanes import lane_of
from tillflow.engine.leasing import Fence
from tillflow.engine.postgres.errors import DatabaseUnavailable, LeaseLost
from tillflow.engine.postgres.lane_windows import LaneWindows
from tillflow.engine.postgres.leases import Leases
from tillflow.engine.postgres.reads import PostgresReads, reason
from tillflow.engine.postgres.schema import MOST_LANES, describe, hide_password, initialise
from tillflow.engine.postgres.writer import (
    Append,
    AppendJob,
    LaneWriter,
    commit_batch,
)
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CommitListener,
    CommitListeners,
    Durability,
    EventRegistry,
    EventStore,
    encode_data,
    validate_append,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt

log = logging.getLogger("tillflow.postgres")

_SYNCHRONOUS_COMMIT: Final = {"full": "on", "normal": "off", "off": "off"}
"""``normal`` and ``off``: a commit is acknowledged before its WAL is flushed, so a crash
of the server (not only a power cut) may lose the last ones; never half of one."""


class PostgresEventStore(PostgresReads, EventStore):
    """The scale-out store on a PostgreSQL database named by ``url`` (``postgresql://…``).

    ``lanes``: the lane count to create the database with, or to insist on (``None``: the
    database's own, 16 for a new one); ``create=False`` refuses an empty database
    (:class:`SchemaMissing`) instead of creating the schema. Opening raises
    :class:`DatabaseUnavailable` (cannot connect, bad URL; never showing the password),
    :class:`NotATillflowDatabase` (tables of something else), :class:`SchemaTooNew`,
    :class:`LaneCountMismatch`; none of them writes anything.
    ``durability`` sets ``synchronous_commit`` (``full``: on). ``max_connections`` bounds
    the pool; a request waits up to ``pool_timeout`` seconds for a connection (all busy, or
    the server away) before :class:`DatabaseUnavailable`. ``lock_timeout`` and
    ``idle_timeout`` (seconds) are set on every session.
    """

    checks_rows_read = True  # a batch's rows read are written or checked only if unchanged

    def __init__(
        self,
        url: str,
        lanes: int | None = None,
        registry: EventRegistry | None = None,
        *,
        durability: Durability = "full",
        max_connections: int = 24,
        connect_timeout: float = 10.0,
        pool_timeout: float = 30.0,
        lock_timeout: float = 30.0,
        idle_timeout: float = 60.0,
        create: bool = True,
    ) -> None:
        if lanes is not None and (
            isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MOST_LANES
        ):
            raise ValueError(f"lanes must be an integer from 1 to {MOST_LANES}: {lanes!r}")
        if durability not in _SYNCHRONOUS_COMMIT:
            raise ValueError(
                f"durability must be one of {sorted(_SYNCHRONOUS_COMMIT)}: {durability!r}"
            )
        self.database = describe(url)
        self.registry = registry
        self._upcasting = None if registry is None else registry.upcasting
        self._settings = {
            "lock_timeout": f"{round(lock_timeout * 1000)}ms",
            "idle_in_transaction_session_timeout": f"{round(idle_timeout * 1000)}ms",
            "synchronous_commit": _SYNCHRONOUS_COMMIT[durability],
            # short statements only: a batch's lookup of thousands of id ranges is
            # estimated dear enough to be JIT-compiled (~0.3 s of CPU each, seconds on a
            # busy server) or run by parallel workers, for a few milliseconds of work
            "jit": "off",
            "max_parallel_workers_per_gather": "0",
            # every join the store runs probes a batch's keys (a JSON document of view
            # rows) against a primary key; taking the document for 100 rows, the planner
            # hashed or merged the whole views table instead until it held ~30,000 rows
            "enable_hashjoin": "off",
            "enable_mergejoin": "off",
        }
        try:
            with psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            ) as conn:
                self._configure(conn)
                self.lane_count = initialise(conn, self.database, lanes, create)
        except psycopg.Error as error:
            raise DatabaseUnavailable(self.database, hide_password(reason(error), url)) from error
        self._pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(connect_timeout))},
            configure=self._configure,
            name=f"tillflow:{self.database}",
            timeout=pool_timeout,
            # a reconnection that keeps failing gives up this soon (the pool's own backoff
            # grows to minutes), so that the first request after the server is back connects
            reconnect_timeout=pool_timeout,
            open=False,
        )
        self._pool.open(wait=False)
        self._local = threading.local()
        self._windows = LaneWindows()
        self._heads_seen: dict[int, int] = {}
        self._listeners = CommitListeners()
        self._committers: dict[int, GroupCommitter] = {}
        self._committers_lock = threading.Lock()
        self._closed = False
        self.leases = Leases(self._pool)
        """The lease and heartbeat tables (workers sharing lanes; see ``fence`` below)."""

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        for name, value in self._settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    # -- writing ---------------------------------------------------------------------------

    def _committer(self, lane: int) -> GroupCommitter:
        if self._closed:
            raise StoreClosed
        committer = self._committers.get(lane)
        if committer is None:
            with self._committers_lock:
                if self._closed:
                    raise StoreClosed
                committer = self._committers.get(lane)
                if committer is None:
                    writer = LaneWriter(self._pool, lane, self.lane_count)
                    committer = GroupCommitter(
                        self._guarded(writer.run_batch),
                        self._listeners.notify,
                        name=f"tillflow-pg-lane-{lane}",
                        caller_runs=True,  # pooled connections: any thread may write
                    )
                    self._committers[lane] = committer
        return committer

    def _guarded(self, run: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
        """``run`` with driver errors raised as :class:`DatabaseUnavailable`."""

        def guarded(jobs: Any) -> list[Any]:
            try:
                return run(jobs)
            except psycopg.Error as error:
                raise DatabaseUnavailable(self.database, reason(error)) from error

        return guarded

    def _append(self, stream: str, events: Sequence[NewEvent], expected_version: int) -> Append:
        validate_append(stream, events, self.registry)
        frozen = list(events)
        return Append(stream, frozen, [encode_data(event) for event in frozen], expected_version)

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        job = AppendJob([self._append(stream, events, expected_version)], many=False)
        result: Receipt = self._committer(lane_of(stream, self.lane_count)).submit(job).result()
        return result

    async def append_async(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        job = AppendJob([self._append(stream, events, expected_version)], many=False)
        committer = self._committer(lane_of(stream, self.lane_count))
        queued = await committer.submit_async(job)  # awaits room while the queue is full
        result: Receipt = await queued
        return result

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """One job per lane, so the requests of a lane share its next transaction; each is
        checked and refused on its own."""
        outcomes: list[Receipt | TillflowError | None] = [None] * len(requests)
        by_lane: dict[int, list[tuple[int, Append]]] = {}
        for index, request in enumerate(requests):
            try:
                append = self._append(request.stream, request.events, request.expected_version)
            except TillflowError as refusal:
                outcomes[index] = refusal
                continue
            lane = lane_of(request.stream, self.lane_count)
            by_lane.setdefault(lane, []).append((index, append))
        queued = [
            (members, self._committer(lane).submit(AppendJob([a for _, a in members], True)))
            for lane, members in by_lane.items()
        ]
        for members, future in queued:
            for (index, _), outcome in zip(members, future.result(), strict=True):
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
        *,
        fence: Fence | None = None,
    ) -> Receipt:
        """The port's batch commit; with ``fence``, also only while that worker holds the
        lease of (``processor``, ``lane``) at that epoch, by the database clock, checked
        inside the committing transaction: else :class:`LeaseLost`, nothing written."""
        encoded = []
        for emitted in effects.emitted:
            if not emitted.checked:
                validate_append(emitted.stream, emitted.events, self.registry)
            encoded.append([encode_data(event) for event in emitted.events])
        self._check_open()
        try:
            receipt = commit_batch(
                self._pool,
                self.lane_count,
                processor,
                lane,
                expected_checkpoint,
                new_checkpoint,
                effects,
                encoded,
                fence,
            )
        except LeaseLost:
            self._count_fenced(processor, lane)
            raise
        except psycopg.Error as error:
            raise DatabaseUnavailable(self.database, reason(error)) from error
        self._listeners.notify()
        return receipt

    def _count_fenced(self, processor: str, lane: int) -> None:
        """Count a batch the fence refused, in a transaction of its own (the refused one
        has rolled back); a database gone meanwhile loses the count, never the refusal."""
        try:
            self.leases.count_fenced(processor, lane)
        except psycopg.Error as error:
            log.warning("could not count a fenced batch of %s/%d: %s", processor, lane, error)

    def writer_statistics(self) -> dict[str, int]:
        """Transactions committed and appends run by the lane writers (group commit at
        work), summed over lanes."""
        totals: dict[str, int] = {}
        for committer in list(self._committers.values()):
            for name, value in committer.statistics().items():
                totals[name] = totals.get(name, 0) + value
        return totals

    # -- lifecycle -------------------------------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def close(self) -> None:
        """Finish every queued append, then close the lane writers and the pool."""
        with self._committers_lock:
            if self._closed:
                return
            self._closed = True
            committers = list(self._committers.values())
        for committer in committers:
            committer.close()
        self._pool.close()
