"""SQLite backend: one file in WAL mode, one lane, every write through one writer thread.

Writes (appends and processor batches) are queued to a :class:`GroupCommitter`; its thread
holds the file's write lock (``BEGIN IMMEDIATE``) for one transaction per group, with a
savepoint per job so one job's error never touches another's. Positions are assigned under
that lock, so they are dense and in commit order: readers need no gap logic.

Reads use one connection per reading thread; WAL lets them run while the writer writes.
Several processes may open the same file: SQLite's lock serialises their writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    EventIdReused,
    NotATillflowDatabase,
    SchemaTooNew,
    StoreClosed,
    TillflowError,
)
from tillflow.engine.group_commit import Failed, GroupCommitter, Job
from tillflow.engine.ids import format_id, new_event_id
from tillflow.engine.recent import RecentEvents
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CommitListener,
    Durability,
    EventRegistry,
    EventStore,
    check_same_content,
    encode_data,
    receipt_of,
    validate_append,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt, RecordedEvent

APPLICATION_ID: Final = 0x54494C4C  # "TILL"
SCHEMA_VERSION: Final = 1
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"

_SCHEMA: Final = """
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    id             BLOB    NOT NULL UNIQUE,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    recorded_at    REAL    NOT NULL,
    causation_id   BLOB,
    correlation_id BLOB,
    UNIQUE (stream, version)
);
CREATE INDEX events_by_causation ON events (causation_id) WHERE causation_id IS NOT NULL;
CREATE TABLE checkpoints (
    processor  TEXT    NOT NULL,
    lane       INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    updated_at REAL    NOT NULL,
    PRIMARY KEY (processor, lane)
) WITHOUT ROWID;
CREATE TABLE views (
    view  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
"""

_COLUMNS: Final = (
    "id, stream, version, 0, position, type, schema_version, data, recorded_at, "
    "causation_id, correlation_id"
)
_INSERT: Final = (
    "INSERT INTO events (position, id, stream, version, type, schema_version, data, "
    "recorded_at, causation_id, correlation_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_SYNCHRONOUS: Final = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}


class _Txn:
    """The state of one writer transaction: the next position and the stream versions."""

    __slots__ = ("conn", "head", "now", "rows", "versions")

    def __init__(self, conn: sqlite3.Connection, head: int, now: float) -> None:
        self.conn = conn
        self.head = head
        self.now = now
        self.versions: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []

    def version_of(self, stream: str) -> int:
        version = self.versions.get(stream)
        if version is None:
            row = self.conn.execute(
                "SELECT max(version) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
            version = row[0] or 0
            self.versions[stream] = version
        return version


class SqliteEventStore(EventStore):
    """The embedded store. ``path`` is created if missing.

    Raises :class:`NotATillflowDatabase` if the file is not a tillflow database and
    :class:`SchemaTooNew` if a newer tillflow wrote it; neither touches the file.
    """

    def __init__(
        self,
        path: str | Path,
        durability: Durability = "full",
        registry: EventRegistry | None = None,
        busy_timeout: float = 30.0,
        recent_events: int = 65_536,
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be one of {sorted(_SYNCHRONOUS)}: {durability!r}")
        self.path = str(path)
        self.lane_count = 1
        self.registry = registry
        self.durability = durability
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._listeners: list[CommitListener] = []
        self._closed = False
        self.recent = RecentEvents(recent_events)
        _check_file(self.path)
        self._initialise()
        self._committer: GroupCommitter[_Txn] = GroupCommitter(
            self._run_batch, self._notify, name=f"tillflow-writer:{Path(self.path).name}"
        )

    # -- connections and schema ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
            )
            conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.durability]}")
            conn.execute("PRAGMA cache_size=-16384")  # 16 MiB per connection
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA mmap_size=268435456")
        except sqlite3.DatabaseError as error:
            raise NotATillflowDatabase(self.path, str(error)) from error
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosed
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _initialise(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                application_id = conn.execute("PRAGMA application_id").fetchone()[0]
                user_version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if application_id == 0 and tables == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                elif application_id != APPLICATION_ID:
                    raise NotATillflowDatabase(
                        self.path,
                        f"an SQLite database of another application (application_id "
                        f"{application_id:#x}, {tables} schema objects)",
                    )
                elif user_version > SCHEMA_VERSION:
                    raise SchemaTooNew(self.path, user_version, SCHEMA_VERSION)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            raise NotATillflowDatabase(self.path, str(error)) from error
        finally:
            conn.close()
            with self._connections_lock:
                self._connections.remove(conn)

    # -- the writer ------------------------------------------------------------------------

    def _writer(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "writer", None)
        if conn is None:
            conn = self._connect()
            self._local.writer = conn
        return conn

    def _run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = conn.execute("SELECT max(position) FROM events").fetchone()[0] or 0
            txn = _Txn(conn, head, time.time())
            if len(jobs) == 1:
                outcomes: list[Any] = [jobs[0](txn)]
            else:
                outcomes = [self._run_isolated(job, txn) for job in jobs]
            conn.execute("COMMIT")
            self.recent.remember(
                RecordedEvent(row[1], row[2], row[3], 0, row[0], *row[4:]) for row in txn.rows
            )
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(jobs) == 1:
                return [Failed(error)]
            raise
        return outcomes

    @staticmethod
    def _run_isolated(job: Job, txn: _Txn) -> Any:
        """Run one job of a shared transaction so that its failure undoes only its own writes.

        A job marked ``refuses_before_writing`` raises :class:`TillflowError` only before it
        has written anything, so it needs no savepoint when it refuses; any other error
        aborts the whole transaction (every job of the group sees it).
        """
        if getattr(job, "refuses_before_writing", False):
            head, written = txn.head, len(txn.rows)
            try:
                return job(txn)
            except TillflowError as refusal:
                txn.head = head
                del txn.rows[written:]
                return Failed(refusal)
        txn.conn.execute("SAVEPOINT job")
        head, written = txn.head, len(txn.rows)
        try:
            result = job(txn)
        except Exception as error:
            txn.conn.execute("ROLLBACK TO job")
            txn.conn.execute("RELEASE job")
            txn.head = head
            del txn.rows[written:]
            txn.versions.clear()
            return Failed(error)
        txn.conn.execute("RELEASE job")
        return result

    def _insert(
        self,
        txn: _Txn,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        check_repeat: bool,
        encoded: Sequence[bytes] | None = None,
    ) -> Receipt:
        if encoded is None:
            encoded = [encode_data(event) for event in events]
        current = txn.version_of(stream)
        if expected_version not in (ANY_VERSION, current):
            repeat = self._repeat_of(txn.conn, stream, events, encoded) if check_repeat else None
            if repeat is not None:
                return repeat
            raise ConcurrencyConflict(stream, expected_version, current)
        position = txn.head
        now = txn.now
        rows = []
        for index, (event, data) in enumerate(zip(events, encoded, strict=True)):
            position += 1
            rows.append(
                (
                    position,
                    event.id or new_event_id(),
                    stream,
                    current + index + 1,
                    event.type,
                    event.schema_version,
                    data,
                    now,
                    event.causation_id,
                    event.correlation_id,
                )
            )
        # one row cannot be half-written; several rows with caller-given ids might collide
        # part-way, so they get a savepoint to roll back to
        explicit = check_repeat and any(event.id is not None for event in events)
        guarded = explicit and len(rows) > 1
        if guarded:
            txn.conn.execute("SAVEPOINT ins")
        try:
            txn.conn.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            if not explicit:
                raise
            if guarded:
                txn.conn.execute("ROLLBACK TO ins")
                txn.conn.execute("RELEASE ins")
            repeat = self._repeat_of(txn.conn, stream, events, encoded)
            if repeat is None:
                raise
            return repeat
        if guarded:
            txn.conn.execute("RELEASE ins")
        txn.head = position
        txn.versions[stream] = current + len(events)
        txn.rows.extend(rows)
        return Receipt(positions={0: position}, streams={stream: current + len(events)})

    @staticmethod
    def _repeat_of(
        conn: sqlite3.Connection,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
    ) -> Receipt | None:
        found: list[RecordedEvent] = []
        for event, data in zip(events, encoded, strict=True):
            if event.id is None:
                continue
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event.id,)
            ).fetchone()
            if row is not None:
                recorded = RecordedEvent(*row)
                check_same_content(recorded, stream, event, data)
                found.append(recorded)
        if not found:
            return None
        if len(found) != len(events):
            raise EventIdReused(format_id(found[0].id), "batch")
        return receipt_of(found)

    # -- writing ---------------------------------------------------------------------------

    def _submit(self, job: Job) -> Any:
        if self._closed:
            raise StoreClosed
        return self._committer.submit(job)

    def _append_job(self, stream: str, events: Sequence[NewEvent], expected_version: int) -> Job:
        validate_append(stream, events, self.registry)
        frozen = list(events)
        encoded = [encode_data(event) for event in frozen]

        def job(txn: _Txn) -> Receipt:
            return self._insert(txn, stream, frozen, expected_version, True, encoded)

        job.refuses_before_writing = True  # type: ignore[attr-defined]
        return job

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        result: Receipt = self._submit(self._append_job(stream, events, expected_version)).result()
        return result

    async def append_async(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        result: Receipt = await asyncio.wrap_future(
            self._submit(self._append_job(stream, events, expected_version))
        )
        return result

    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
    ) -> Receipt:
        for emitted in effects.emitted:
            validate_append(emitted.stream, emitted.events, self.registry)
        upserts = [(view, key, value) for (view, key), value in effects.views.items() if value]
        deletes = [(view, key) for (view, key), value in effects.views.items() if value is None]

        def job(txn: _Txn) -> Receipt:
            conn = txn.conn
            moved = conn.execute(
                "UPDATE checkpoints SET position = ?, updated_at = ? "
                "WHERE processor = ? AND lane = ? AND position = ?",
                (new_checkpoint, txn.now, processor, lane, expected_checkpoint),
            ).rowcount
            if moved == 0:
                row = conn.execute(
                    "SELECT position FROM checkpoints WHERE processor = ? AND lane = ?",
                    (processor, lane),
                ).fetchone()
                if row is not None or expected_checkpoint != 0:
                    actual = 0 if row is None else row[0]
                    raise CheckpointConflict(processor, lane, expected_checkpoint, actual)
                conn.execute(
                    "INSERT INTO checkpoints (processor, lane, position, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (processor, lane, new_checkpoint, txn.now),
                )
            receipt = Receipt(positions={}, streams={})
            for emitted in effects.emitted:
                receipt = receipt.merge(
                    self._insert(
                        txn, emitted.stream, emitted.events, emitted.expected_version, False
                    )
                )
            if upserts:
                conn.executemany(
                    "INSERT INTO views (view, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (view, key) DO UPDATE SET value = excluded.value",
                    upserts,
                )
            if deletes:
                conn.executemany("DELETE FROM views WHERE view = ? AND key = ?", deletes)
            return receipt

        result: Receipt = self._submit(job).result()
        return result

    # -- reading ---------------------------------------------------------------------------

    def head(self, lane: int) -> int:
        if lane != 0:
            return 0
        row = self._reader().execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def read(
        self,
        lane: int,
        after: int,
        upto: int | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        if lane != 0:
            return []
        if upto is not None:
            held = self.recent.span(after, upto)
            if held is not None:
                if types is not None:
                    wanted = types if isinstance(types, (set, frozenset)) else frozenset(types)
                    held = [event for event in held if event.type in wanted]
                return held if limit is None else held[:limit]
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > ?"
        params: list[Any] = [after]
        if upto is not None:
            sql += " AND position <= ?"
            params.append(upto)
        if types is not None:
            names = list(types)
            if not names:
                return []
            sql += f" AND type IN ({','.join('?' * len(names))})"
            params.extend(names)
        sql += " ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._reader().execute(sql, params).fetchall()
        events = [RecordedEvent(*row) for row in rows]
        if types is None:
            self.recent.remember(events)
        return events

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version > ? AND version <= ? "
            "ORDER BY version",
            (stream, after_version, upto_version if upto_version is not None else 2**62),
        )
        return [RecordedEvent(*row) for row in rows]

    def last_event(self, stream: str) -> RecordedEvent | None:
        row = (
            self._reader()
            .execute(
                f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1",
                (stream,),
            )
            .fetchone()
        )
        return None if row is None else RecordedEvent(*row)

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """Every request is queued at once, so they share the writer's transactions."""
        futures = [
            self._submit(self._append_job(r.stream, r.events, r.expected_version)) for r in requests
        ]
        outcomes: list[Receipt | TillflowError] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except TillflowError as refusal:
                outcomes.append(refusal)
        return outcomes

    def stream_version(self, stream: str) -> int:
        row = (
            self._reader()
            .execute("SELECT max(version) FROM events WHERE stream = ?", (stream,))
            .fetchone()
        )
        return int(row[0] or 0)

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE causation_id = ? ORDER BY position",
            (causation_id,),
        )
        return [RecordedEvent(*row) for row in rows]

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        row = (
            self._reader()
            .execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,))
            .fetchone()
        )
        return None if row is None else RecordedEvent(*row)

    def checkpoint(self, processor: str, lane: int) -> int:
        row = (
            self._reader()
            .execute(
                "SELECT position FROM checkpoints WHERE processor = ? AND lane = ?",
                (processor, lane),
            )
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def checkpoints(self) -> dict[str, dict[int, int]]:
        result: dict[str, dict[int, int]] = {}
        for processor, lane, position in self._reader().execute(
            "SELECT processor, lane, position FROM checkpoints"
        ):
            result.setdefault(processor, {})[lane] = position
        return result

    def read_view(self, view: str, key: str) -> bytes | None:
        row = (
            self._reader()
            .execute("SELECT value FROM views WHERE view = ? AND key = ?", (view, key))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def view_rows(self, view: str) -> Iterator[tuple[str, bytes]]:
        rows = (
            self._reader()
            .execute("SELECT key, value FROM views WHERE view = ? ORDER BY key", (view,))
            .fetchall()
        )
        return iter([(key, bytes(value)) for key, value in rows])

    def writer_statistics(self) -> dict[str, int]:
        """Transactions committed and jobs run by the writer thread (group commit at work)."""
        return self._committer.statistics()

    # -- lifecycle -------------------------------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # a listener must never stop the writer
                listener()

    def close(self) -> None:
        if self._closed:
            return
        self._committer.close()
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _check_file(path: str) -> None:
    file = Path(path)
    if not file.exists() or file.stat().st_size == 0:
        return
    if file.is_dir():
        raise NotATillflowDatabase(path, "it is a directory")
    with file.open("rb") as handle:
        magic = handle.read(len(_SQLITE_MAGIC))
    if magic != _SQLITE_MAGIC:
        raise NotATillflowDatabase(path, "not an SQLite file")
