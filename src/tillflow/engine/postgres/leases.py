"""Leases per (processor group, lane) and worker heartbeats, in SQL.

A lease row has an owner (a worker id, ``NULL`` once resigned), an epoch incremented on
every acquisition, and an expiry on the **database clock** (``clock_timestamp()``): no
worker's clock is ever compared with another's. A lease is free when it has no owner or
its expiry has passed; renewing extends only leases still unexpired. A fenced batch
(:data:`FENCE`) locks its lease row ``FOR SHARE`` inside the committing transaction, so a
takeover waits for that commit, and a worker that has lost the lease commits nothing; the
refusal is then counted (:meth:`Leases.count_fenced`) in a transaction of its own. A
worker's heartbeat row says until when it is alive and which processor groups it runs: a
group's fair share counts only the live workers running it. A lease let go and a worker
joining are announced on :data:`CHANNEL`, so the others run their round at once
(:meth:`Leases.listen`): a SIGTERM hands the lanes over in well under a second. A worker
gone without a word (SIGKILL) stops renewing; :meth:`Leases.next_expiry` tells the others
when its leases run out, so that they take its lanes then.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg_pool import ConnectionPool

from tillflow.engine.leasing import Fence

log = logging.getLogger("tillflow.leasing")

FENCE: Final = (
    "SELECT 1 FROM leases WHERE processor = %s AND lane = %s AND owner = %s AND epoch = %s "
    "AND expires_at > clock_timestamp() FOR SHARE"
)
"""The fence of a batch: one row while its worker holds the lease at its epoch."""
_TTL: Final = "clock_timestamp() + %s * interval '1 second'"
_ACQUIRE: Final = (
    "INSERT INTO leases (processor, lane, owner, epoch, expires_at) "
    f"VALUES (%s, %s, %s, 1, {_TTL}) "
    "ON CONFLICT (processor, lane) DO UPDATE SET owner = excluded.owner, "
    "epoch = leases.epoch + 1, expires_at = excluded.expires_at "
    "WHERE leases.owner IS NULL OR leases.expires_at <= clock_timestamp() RETURNING epoch"
)
_RENEW: Final = (
    f"UPDATE leases SET expires_at = {_TTL} "
    "WHERE owner = %s AND expires_at > clock_timestamp() RETURNING processor, lane, epoch"
)
_RELEASE: Final = (
    "UPDATE leases SET owner = NULL, expires_at = clock_timestamp() "
    "WHERE processor = %s AND lane = %s AND owner = %s AND epoch = %s"
)
_RESIGN: Final = "UPDATE leases SET owner = NULL, expires_at = clock_timestamp() WHERE owner = %s"
_HEARTBEAT: Final = (
    f"INSERT INTO workers (worker, expires_at, groups) VALUES (%s, {_TTL}, %s) "
    "ON CONFLICT (worker) DO UPDATE SET expires_at = excluded.expires_at, groups = excluded.groups "
    "RETURNING xmax = 0"
)
"""Returns ``true`` when the worker is new (inserted, not updated)."""
CHANNEL: Final = "tillflow_leases"
"""Where a lease let go or a worker joining is announced (``NOTIFY``, outside any appending
transaction): a hint for other workers to run their lease round now, not at the next
``ttl / 3``; nothing depends on it being delivered."""
_ANNOUNCE: Final = f"SELECT pg_notify('{CHANNEL}', %s)"
_LIVE: Final = "SELECT count(*) FROM workers WHERE expires_at > clock_timestamp()"
_LIVE_IN_GROUP: Final = f"{_LIVE} AND %s = ANY (groups)"
_ROWS: Final = (
    "SELECT processor, lane, owner, epoch, expires_at, "
    "extract(epoch FROM expires_at - clock_timestamp())::float8 FROM leases "
    "ORDER BY processor, lane"
)
_COUNT_FENCED: Final = (
    "INSERT INTO fenced_commits (processor, lane, refused, last_at) "
    "VALUES (%s, %s, 1, clock_timestamp()) ON CONFLICT (processor, lane) DO UPDATE "
    "SET refused = fenced_commits.refused + 1, last_at = excluded.last_at"
)
_FENCED: Final = "SELECT processor, lane, refused FROM fenced_commits"
_HELD: Final = (
    "SELECT processor, lane FROM leases WHERE owner IS NOT NULL AND expires_at > clock_timestamp()"
)
_NEXT_EXPIRY: Final = (
    "SELECT extract(epoch FROM least("
    "(SELECT min(expires_at) FROM leases WHERE owner <> %s AND expires_at > clock_timestamp()), "
    "(SELECT min(expires_at) FROM workers WHERE worker <> %s AND expires_at > clock_timestamp())"
    ") - clock_timestamp())::float8"
)
_ROSTER_WORKERS: Final = "SELECT worker, groups FROM workers WHERE expires_at > clock_timestamp()"
_ROSTER_ANCHORS: Final = (
    "SELECT processor, owner FROM leases "
    "WHERE lane = 0 AND owner IS NOT NULL AND expires_at > clock_timestamp()"
)
_LIVE_WORKERS: Final = (
    "SELECT worker, extract(epoch FROM expires_at - clock_timestamp())::float8 FROM workers "
    "WHERE expires_at > clock_timestamp() ORDER BY worker"
)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One lease as operators see it; ``remaining``: seconds to expiry by the database
    clock (negative once expired), ``owner`` ``None`` once resigned."""

    processor: str
    lane: int
    owner: str | None
    epoch: int
    expires_at: datetime
    remaining: float

    @property
    def held(self) -> bool:
        return self.owner is not None and self.remaining > 0


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A live worker: ``remaining``, seconds to its heartbeat's expiry (database clock)."""

    worker: str
    remaining: float


@dataclass(frozen=True, slots=True)
class Holding:
    """What one worker holds: per processor group, its lanes (ascending); ``expires_in``,
    seconds to the soonest expiry among those leases (``None``: it holds none)."""

    worker: str
    lanes: dict[str, list[int]]
    expires_in: float | None


@dataclass(frozen=True, slots=True)
class LeaseOverview:
    """The lease tables as operators read them (in one round trip): every lease, the
    batches the fence refused per (group, lane), and the live workers."""

    leases: list[LeaseRow]
    fenced: dict[tuple[str, int], int]
    workers: list[WorkerRow]

    def holdings(self) -> list[Holding]:
        """Every live worker and every owner of an unexpired lease, by id, with what it
        holds."""
        lanes: dict[str, dict[str, list[int]]] = {w.worker: {} for w in self.workers}
        expiry: dict[str, float] = {}
        for row in self.leases:
            if row.held and row.owner is not None:
                lanes.setdefault(row.owner, {}).setdefault(row.processor, []).append(row.lane)
                expiry[row.owner] = min(expiry.get(row.owner, row.remaining), row.remaining)
        return [
            Holding(
                worker,
                {group: sorted(held) for group, held in lanes[worker].items()},
                expiry.get(worker),
            )
            for worker in sorted(lanes)
        ]


def _seconds(ttl: float) -> float:
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"a lease TTL must be a positive number of seconds: {ttl!r}")
    return float(ttl)


class Leases:
    """The lease and heartbeat tables of one database, through the store's pool. Every
    method is one autocommitted statement; times are the database's."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def acquire(self, processor: str, lane: int, owner: str, ttl: float) -> Fence | None:
        """Take the lease if it is free (never held, resigned or expired): the new fence
        (epoch one more than the last), else ``None``. Waits for a batch committing under
        the lease to finish, so the checkpoint read after this is the last one."""
        seconds = _seconds(ttl)
        with self._pool.connection() as conn:
            row = conn.execute(_ACQUIRE, (processor, lane, owner, seconds)).fetchone()
        return None if row is None else Fence(owner, int(row[0]))

    def renew(self, owner: str, ttl: float) -> dict[tuple[str, int], Fence]:
        """Extend every unexpired lease of ``owner`` by ``ttl`` from now; the leases it
        still holds. One missing from the answer is lost: stop committing on it."""
        seconds = _seconds(ttl)
        with self._pool.connection() as conn:
            rows = conn.execute(_RENEW, (seconds, owner)).fetchall()
        return {(str(p), int(lane)): Fence(owner, int(epoch)) for p, lane, epoch in rows}

    def release(self, processor: str, lane: int, fence: Fence) -> bool:
        """Hand the lease over at once (a batch boundary); ``False`` if it was already
        lost."""
        with self._pool.connection() as conn:
            cursor = conn.execute(_RELEASE, (processor, lane, fence.owner, fence.epoch))
            released = int(cursor.rowcount) == 1
            if released:
                conn.execute(_ANNOUNCE, (fence.owner,))
            return released

    def resign(self, owner: str) -> int:
        """Release every lease of ``owner`` and drop its heartbeat (SIGTERM): others take
        the lanes without waiting for expiry. The number of leases released."""
        with self._pool.connection() as conn, conn.transaction():
            released = int(conn.execute(_RESIGN, (owner,)).rowcount)
            conn.execute("DELETE FROM workers WHERE worker = %s", (owner,))
            conn.execute(_ANNOUNCE, (owner,))
        return released

    def heartbeat(self, owner: str, ttl: float, groups: Sequence[str] = ()) -> None:
        """Mark ``owner`` alive for ``ttl`` seconds from now, running ``groups``."""
        seconds = _seconds(ttl)
        with self._pool.connection() as conn:
            row = conn.execute(_HEARTBEAT, (owner, seconds, list(groups))).fetchone()
            if row is not None and row[0]:  # a new worker: others hand it their surplus
                conn.execute(_ANNOUNCE, (owner,))

    def listen(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_change`` whenever a lease is let go or a worker joins, until ``stop``
        is set (blocking: run it in a thread). Holds one pooled connection meanwhile; a
        failed connection is retried every second (the rounds go on without hints)."""
        while not stop.is_set():
            try:
                with self._pool.connection(timeout=1.0) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    try:
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=0.5, stop_after=1):
                                on_change()
                    finally:
                        conn.execute(f"UNLISTEN {CHANNEL}")
            except Exception as error:  # the database away: the rounds will say so
                log.debug("lease hints unavailable: %s", error)
                stop.wait(1.0)

    def live_workers(self, group: str | None = None) -> int:
        """Workers whose heartbeat has not expired; with ``group``, those running it."""
        with self._pool.connection() as conn:
            if group is None:
                row = conn.execute(_LIVE).fetchone()
            else:
                row = conn.execute(_LIVE_IN_GROUP, (group,)).fetchone()
        return 0 if row is None else int(row[0])

    def held_lanes(self) -> dict[str, set[int]]:
        """Per group, the lanes whose lease is held and unexpired now (by anyone): a
        keeper tries to acquire only the others."""
        with self._pool.connection() as conn:
            rows = conn.execute(_HELD).fetchall()
        held: dict[str, set[int]] = {}
        for processor, lane in rows:
            held.setdefault(str(processor), set()).add(int(lane))
        return held

    def roster(self) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
        """The live workers with their groups, and per group its lane-0 lease's owner."""
        with self._pool.connection() as conn:
            workers = conn.execute(_ROSTER_WORKERS).fetchall()
            anchors = conn.execute(_ROSTER_ANCHORS).fetchall()
        return (
            {str(worker): frozenset(groups or ()) for worker, groups in workers},
            {str(group): str(owner) for group, owner in anchors},
        )

    def next_expiry(self, owner: str) -> float | None:
        """Seconds until the soonest of the other workers' leases and heartbeats expires
        (database clock; ``None``: none is running out). A worker gone without resigning
        stops renewing, so this is when its lanes become free (or the fair share grows)."""
        with self._pool.connection() as conn:
            row = conn.execute(_NEXT_EXPIRY, (owner, owner)).fetchone()
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    def rows(self) -> list[LeaseRow]:
        """Every lease, by group and lane."""
        with self._pool.connection() as conn:
            rows = conn.execute(_ROWS).fetchall()
        return _lease_rows(rows)

    def count_fenced(self, processor: str, lane: int) -> None:
        """Count one batch of (``processor``, ``lane``) refused by its fence. Called after
        the refused transaction rolled back, never inside it (that one writes nothing)."""
        with self._pool.connection() as conn:
            conn.execute(_COUNT_FENCED, (processor, lane))

    def overview(self) -> LeaseOverview:
        """Every lease, the fenced counts and the live workers, in one round trip."""
        with self._pool.connection() as conn, conn.pipeline():
            leases, fenced, workers = (
                conn.execute(_ROWS),
                conn.execute(_FENCED),
                conn.execute(_LIVE_WORKERS),
            )
            return LeaseOverview(
                _lease_rows(leases.fetchall()),
                {(str(p), int(lane)): int(n) for p, lane, n in fenced.fetchall()},
                [WorkerRow(str(w), float(r)) for w, r in workers.fetchall()],
            )


def _lease_rows(rows: list[tuple[Any, ...]]) -> list[LeaseRow]:
    return [LeaseRow(str(p), int(ln), o, int(e), at, float(r)) for p, ln, o, e, at, r in rows]
