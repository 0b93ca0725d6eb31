"""The SQLite writer: how one group of write jobs becomes one transaction.

Jobs are :class:`AppendJob` (a caller's append) and :class:`CommitJob` (a processor batch:
checkpoint compare-and-set, emitted events, view rows). A group runs like this:

1. ``BEGIN IMMEDIATE`` (the file's write lock), read the head;
2. *prefetch* in a few statements what every job will ask: the versions of all streams the
   group touches and which caller-given ids are already recorded — except for appends that
   expect a new stream (``NO_STREAM``, e.g. a checkout): their streams are taken to be new
   and their ids unused, which the unique indexes check at the insert for free (a stream
   or id that exists after all trips them, and the careful re-run below sorts it out);
3. run each job in Python, in order: it checks versions and ids, assigns positions and
   queues its rows — an append that is refused (conflict, reused id) writes nothing;
   a commit job runs in a savepoint (its checkpoint update and view rows are SQL);
4. insert every queued row with one ``executemany``, ``COMMIT``, and hand the rows to the
   ring of recent events.

If the single insert trips a unique constraint (two appends in one group reusing one id),
the whole group is rolled back and run again *carefully*: each job inserting its own rows
at once, so the repeat is recognised as such. Positions are assigned while holding the
write lock, so they are dense and in commit order.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final

import msgspec

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    StoreUnavailable,
    TillflowError,
)
from tillflow.engine.group_commit import Failed
from tillflow.engine.ids import new_event_id
from tillflow.engine.recent import RecentEvents
from tillflow.engine.store import BatchEffects, check_not_past, repeat_receipt
from tillflow.engine.types import ANY_VERSION, NO_STREAM, NewEvent, Receipt, RecordedEvent

COLUMNS: Final = (
    "id, stream, version, 0, position, type, schema_version, data, recorded_at, "
    "causation_id, correlation_id"
)
_INSERT: Final = (
    "INSERT INTO events (position, id, stream, version, type, schema_version, data, "
    "recorded_at, causation_id, correlation_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
HEAD: Final = "SELECT position FROM events ORDER BY position DESC LIMIT 1"
"""The last position (``max(position)`` costs four times as much here)."""
_CHUNK: Final = 500  # host parameters per IN (...) list
_FIRST_PAUSE: Final = 0.0001
_MOST_PAUSE: Final = 0.0005
"""Seconds between tries for the write lock (see :meth:`SqliteWriter._begin`)."""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether ``error`` is another connection holding the lock (any extended busy code)."""
    return error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _RunCarefully(Exception):
    """Raised inside a deferred group when only a careful re-run can tell what is right."""


class Txn:
    """The state of one group's transaction."""

    __slots__ = ("careful", "conn", "existing_ids", "head", "new_ids", "now", "rows", "versions")

    def __init__(self, conn: sqlite3.Connection, head: int, careful: bool) -> None:
        self.conn = conn
        self.head = head
        self.now = time.time()
        self.careful = careful
        self.versions: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.existing_ids: set[bytes] = set()
        self.new_ids: set[bytes] = set()

    def version_of(self, stream: str) -> int:
        version = self.versions.get(stream)
        if version is None:
            row = self.conn.execute(
                "SELECT max(version) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
            version = row[0] or 0
            self.versions[stream] = version
        return version

    def prefetch(self, streams: Collection[str], ids: Collection[bytes]) -> None:
        """Load the versions of ``streams`` and which of ``ids`` exist, a chunk at a time."""
        wanted = [stream for stream in streams if stream not in self.versions]
        for start in range(0, len(wanted), _CHUNK * 4):
            # one index seek per stream (an IN (...) GROUP BY reads every version instead)
            self.versions.update(
                (stream, version or 0)
                for stream, version in self.conn.execute(
                    "SELECT value, (SELECT max(version) FROM events WHERE stream = value) "
                    "FROM json_each(?)",
                    (msgspec.json.encode(wanted[start : start + _CHUNK * 4]),),
                )
            )
        listed = list(ids)
        for start in range(0, len(listed), _CHUNK):
            id_chunk = listed[start : start + _CHUNK]
            marks = ",".join("?" * len(id_chunk))
            self.existing_ids.update(
                row[0]
                for row in self.conn.execute(
                    f"SELECT id FROM events WHERE id IN ({marks})", id_chunk
                )
            )

    def assume_new(self, streams: Iterable[str]) -> None:
        """Take ``streams`` (not prefetched) to be new: version 0, checked at the insert."""
        versions = self.versions
        for stream in streams:
            if stream not in versions:
                versions[stream] = 0

    def insert(
        self,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
        expected_version: int,
        check_repeat: bool,
    ) -> Receipt:
        """Check and queue (or, careful, insert) one append; see the module docstring."""
        current = self.version_of(stream)
        explicit = [event.id for event in events if event.id is not None] if check_repeat else []
        if explicit and not self.careful and not self.new_ids.isdisjoint(explicit):
            raise _RunCarefully  # this group already queued one of these ids
        if expected_version not in (ANY_VERSION, current):
            repeat = self._repeat_of(stream, events, encoded) if explicit else None
            if repeat is not None:
                return repeat
            raise ConcurrencyConflict(stream, expected_version, current)
        if explicit and not self.careful:
            if not self.existing_ids.isdisjoint(explicit):
                repeat = self._repeat_of(stream, events, encoded)
                if repeat is not None:
                    return repeat
            if len(set(explicit)) != len(explicit):
                raise _RunCarefully
            self.new_ids.update(explicit)
        rows = self._rows(stream, events, encoded, current)
        if self.careful:
            self.conn.execute("SAVEPOINT ins")
            try:
                self.conn.executemany(_INSERT, rows)
            except sqlite3.IntegrityError:
                self.conn.execute("ROLLBACK TO ins")
                self.conn.execute("RELEASE ins")
                repeat = self._repeat_of(stream, events, encoded) if explicit else None
                if repeat is None:
                    raise
                return repeat
            self.conn.execute("RELEASE ins")
        self.head += len(rows)
        self.versions[stream] = current + len(events)
        self.rows.extend(rows)
        return Receipt(positions={0: self.head}, streams={stream: current + len(events)})

    def queue_emitted(
        self,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
        expected_version: int,
    ) -> None:
        """Check and queue a processor's emitted events (not careful: see :meth:`insert`).
        No id checks: derived ids are new while the processor's checkpoint CAS holds, and
        the single insert's unique index would catch the impossible."""
        current = self.versions.get(stream)
        if current is None:
            current = self.version_of(stream)
        if expected_version not in (ANY_VERSION, current):
            raise ConcurrencyConflict(stream, expected_version, current)
        rows = self._rows(stream, events, encoded, current)
        self.rows.extend(rows)
        self.head += len(rows)
        self.versions[stream] = current + len(rows)

    def _rows(
        self, stream: str, events: Sequence[NewEvent], encoded: Sequence[bytes], current: int
    ) -> list[tuple[Any, ...]]:
        """The rows of ``events`` appended to ``stream`` (at ``current``) after the head."""
        head, now = self.head, self.now
        return [
            (
                head + offset,
                event.id or new_event_id(),
                stream,
                current + offset,
                event.type,
                event.schema_version,
                data,
                now,
                event.causation_id,
                event.correlation_id,
            )
            for offset, (event, data) in enumerate(zip(events, encoded, strict=True), start=1)
        ]

    def _repeat_of(
        self, stream: str, events: Sequence[NewEvent], encoded: Sequence[bytes]
    ) -> Receipt | None:
        return repeat_receipt(stream, events, encoded, self._recorded)

    def _recorded(self, event_id: bytes) -> RecordedEvent | None:
        row = self.conn.execute(f"SELECT {COLUMNS} FROM events WHERE id = ?", (event_id,))
        found = row.fetchone()
        return None if found is None else RecordedEvent(*found)


class AppendJob:
    """A caller's append. Refuses (raises :class:`TillflowError`) only before writing."""

    refuses_before_writing = True
    __slots__ = ("encoded", "events", "expected_version", "stream")

    def __init__(
        self,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
        expected_version: int,
    ) -> None:
        self.stream = stream
        self.events = events
        self.encoded = encoded
        self.expected_version = expected_version

    def streams(self) -> list[str]:
        return [] if self.expected_version == NO_STREAM else [self.stream]

    def new_streams(self) -> list[str]:
        return [self.stream] if self.expected_version == NO_STREAM else []

    def explicit_ids(self) -> list[bytes]:
        if self.expected_version == NO_STREAM:
            return []
        return [event.id for event in self.events if event.id is not None]

    def __call__(self, txn: Txn) -> Receipt:
        return txn.insert(self.stream, self.events, self.encoded, self.expected_version, True)


class AppendManyJob:
    """Several callers' appends queued as one job (one future for the lot): each is checked
    and refused on its own, exactly as if queued alone. Its result is, per append, its
    receipt or its refusal."""

    refuses_before_writing = True
    __slots__ = ("appends",)

    def __init__(self, appends: Sequence[AppendJob]) -> None:
        self.appends = appends

    def streams(self) -> list[str]:
        return [stream for append in self.appends for stream in append.streams()]

    def new_streams(self) -> list[str]:
        return [stream for append in self.appends for stream in append.new_streams()]

    def explicit_ids(self) -> list[bytes]:
        return [event_id for append in self.appends for event_id in append.explicit_ids()]

    def __call__(self, txn: Txn) -> list[Receipt | TillflowError]:
        outcomes: list[Receipt | TillflowError] = []
        for append in self.appends:
            head, written = txn.head, len(txn.rows)
            try:
                outcomes.append(append(txn))
            except TillflowError as refusal:
                txn.head = head
                del txn.rows[written:]
                outcomes.append(refusal)
        return outcomes


class CommitJob:
    """A processor batch: checkpoint compare-and-set, emitted events, view rows."""

    refuses_before_writing = False
    __slots__ = ("effects", "encoded", "expected", "lane", "new", "processor")

    def __init__(
        self,
        processor: str,
        lane: int,
        expected: int,
        new: int,
        effects: BatchEffects,
        encoded: list[list[bytes]],
    ) -> None:
        self.processor = processor
        self.lane = lane
        self.expected = expected
        self.new = new
        self.effects = effects
        self.encoded = encoded

    def streams(self) -> list[str]:
        return [emitted.stream for emitted in self.effects.emitted]

    def new_streams(self) -> list[str]:
        return []

    def explicit_ids(self) -> list[bytes]:
        return []

    def __call__(self, txn: Txn) -> Receipt:
        conn = txn.conn
        check_not_past(self.effects, functools.partial(_checkpoint, conn))
        moved = conn.execute(
            "UPDATE checkpoints SET position = ?, updated_at = ? "
            "WHERE processor = ? AND lane = ? AND position = ?",
            (self.new, txn.now, self.processor, self.lane, self.expected),
        ).rowcount
        if moved == 0:
            row = conn.execute(
                "SELECT position FROM checkpoints WHERE processor = ? AND lane = ?",
                (self.processor, self.lane),
            ).fetchone()
            if row is not None or self.expected != 0:
                actual = 0 if row is None else row[0]
                raise CheckpointConflict(self.processor, self.lane, self.expected, actual)
            conn.execute(
                "INSERT INTO checkpoints (processor, lane, position, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (self.processor, self.lane, self.new, txn.now),
            )
        emitted_all = self.effects.emitted
        first = txn.head
        for emitted, encoded in zip(emitted_all, self.encoded, strict=True):
            if txn.careful:
                txn.insert(emitted.stream, emitted.events, encoded, emitted.expected_version, False)
            else:
                txn.queue_emitted(emitted.stream, emitted.events, encoded, emitted.expected_version)
        positions = {0: txn.head} if txn.head > first else {}
        streams = {emitted.stream: txn.versions[emitted.stream] for emitted in emitted_all}
        views = self.effects.views
        upserts = [(view, key, value) for (view, key), value in views.items() if value]
        if upserts:
            conn.executemany(
                "INSERT INTO views (view, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (view, key) DO UPDATE SET value = excluded.value",
                upserts,
            )
        deletes = [(view, key) for (view, key), value in views.items() if value is None]
        if deletes:
            conn.executemany("DELETE FROM views WHERE view = ? AND key = ?", deletes)
        return Receipt(positions=positions, streams=streams)


def _checkpoint(conn: sqlite3.Connection, processor: str, lane: int) -> int:
    row = conn.execute(
        "SELECT position FROM checkpoints WHERE processor = ? AND lane = ?", (processor, lane)
    ).fetchone()
    return 0 if row is None else int(row[0])


Job = AppendJob | AppendManyJob | CommitJob


class SqliteWriter:
    """Runs groups of jobs on the writer connection (only ever from the writer thread)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        recent: RecentEvents,
        durability: str = "full",
        busy_timeout: float = 30.0,
    ) -> None:
        self._connect_with_timeout = connect
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._recent = recent
        self._durability = durability
        self._synchronous = ""
        self._commits_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self.checkpoints = 0
        self.lock_wait = 0.0
        """Seconds spent waiting for the file's write lock (held by another process)."""

    def maybe_checkpoint(self) -> None:
        """Copy the WAL into the database file every few commits (at most every quarter
        second), after the callers of the last group already have their results — not
        inside an append's COMMIT, as SQLite's automatic checkpoint would. Run between
        groups by this process's only writer, the checkpoint usually completes, so the next
        transaction starts the WAL over and it stays small. PASSIVE: never waits."""
        self._commits_since_checkpoint += 1
        now = time.monotonic()
        if self._commits_since_checkpoint < 8 and now - self._last_checkpoint < 0.25:
            return
        if self._conn is None:
            return
        self._commits_since_checkpoint = 0
        self._last_checkpoint = now
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:  # busy: the next round tries again
            return

    def run_batch(self, jobs: Sequence[Callable[[Any], Any]]) -> list[Any]:
        """One transaction for ``jobs``; per job its result or a :class:`Failed`."""
        typed: list[Job] = [
            job for job in jobs if isinstance(job, (AppendJob, AppendManyJob, CommitJob))
        ]
        if len(typed) != len(jobs):
            raise TypeError("the SQLite writer runs AppendJob, AppendManyJob and CommitJob only")
        try:
            return self._run(typed, careful=False)
        except _RunCarefully:
            return self._run(typed, careful=True)

    def _run(self, jobs: list[Job], careful: bool) -> list[Any]:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        self._set_synchronous(conn, jobs)
        self._begin(conn)
        try:
            row = conn.execute(HEAD).fetchone()
            head = 0 if row is None else row[0]
            txn = Txn(conn, head, careful)
            if not careful:
                txn.prefetch(
                    {stream for job in jobs for stream in job.streams()},
                    [event_id for job in jobs for event_id in job.explicit_ids()],
                )
                txn.assume_new(stream for job in jobs for stream in job.new_streams())
            outcomes = [self._run_isolated(job, txn) for job in jobs]
            if not careful and txn.rows:
                try:
                    conn.executemany(_INSERT, txn.rows)
                except sqlite3.IntegrityError as clash:
                    raise _RunCarefully from clash
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._recent.remember_rows(txn.rows)
        return outcomes

    def _connect(self) -> sqlite3.Connection:
        conn = self._connect_with_timeout()
        conn.execute("PRAGMA busy_timeout=0")  # _begin polls instead
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: take the file's write lock, polling every fraction of a
        millisecond while another process holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so a
        lock freed just after a try stays idle for up to that long: with two writing
        processes taking turns (tills and processors) that idle time was a tenth of the
        run. The writer's connection has no busy timeout; this loop is its busy handler,
        with the same overall patience (the store's ``busy_timeout``)."""
        started: float | None = None
        pause = _FIRST_PAUSE
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                now = time.perf_counter()
                started = now if started is None else started
                if not _is_busy(error) or now - started >= self._busy_timeout:
                    self.lock_wait += now - started
                    if _is_busy(error):  # held too long by another process: wait it out
                        raise StoreUnavailable(
                            f"the database is locked by another connection for over "
                            f"{self._busy_timeout:g} s"
                        ) from error
                    raise
                time.sleep(pause)
                pause = min(pause * 2, _MOST_PAUSE)
                continue
            if started is not None:
                self.lock_wait += time.perf_counter() - started
            return

    def _set_synchronous(self, conn: sqlite3.Connection, jobs: list[Job]) -> None:
        """With durability ``full``, a group holding a caller's append is fsync'd before it
        is acknowledged; a group of processor batches only is not: losing one in a power
        cut loses nothing (its effects and checkpoint go together, so it is simply redone),
        and the WAL is sequential, so the next fsync'd commit makes it durable anyway."""
        level = "OFF" if self._durability == "off" else "NORMAL"
        if self._durability == "full" and any(
            isinstance(job, (AppendJob, AppendManyJob)) for job in jobs
        ):
            level = "FULL"
        if level != self._synchronous:
            conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    @staticmethod
    def _run_isolated(job: Job, txn: Txn) -> Any:
        """Run one job so that its failure undoes only its own writes."""
        head, written = txn.head, len(txn.rows)
        if job.refuses_before_writing:
            try:
                return job(txn)
            except TillflowError as refusal:
                txn.head = head
                del txn.rows[written:]
                return Failed(refusal)
        txn.conn.execute("SAVEPOINT job")
        versions = dict(txn.versions)
        try:
            result = job(txn)
        except _RunCarefully:
            raise
        except Exception as error:  # handed to the job's caller
            txn.conn.execute("ROLLBACK TO job")
            txn.conn.execute("RELEASE job")
            txn.head = head
            txn.versions = versions
            del txn.rows[written:]
            return Failed(error)
        txn.conn.execute("RELEASE job")
        return result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
