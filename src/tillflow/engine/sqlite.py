"""SQLite backend: one file in WAL mode, one lane, every write through one writer thread.

Writes (appends and processor batches) are queued to a :class:`GroupCommitter`; its thread
holds the file's write lock (``BEGIN IMMEDIATE``) for one transaction per group, with a
savepoint per job so one job's error never touches another's. Positions are assigned under
that lock, so they are dense and in commit order: readers need no gap logic.

Reads use one connection per reading thread; WAL lets them run while the writer writes.
Several processes may open the same file: SQLite's lock serialises their writers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from tillflow.engine.errors import (
    NotATillflowDatabase,
    SchemaTooNew,
    StoreClosed,
    StoreUnavailable,
    TillflowError,
)
from tillflow.engine.group_commit import DEFAULT_MAX_QUEUED, GroupCommitter, require_count
from tillflow.engine.ids import EMITTER_PREFIX, emitter_prefix
from tillflow.engine.outage import OutageBackoff
from tillflow.engine.recent import RecentEvents
from tillflow.engine.sqlite_errors import blip, unavailable
from tillflow.engine.sqlite_writer import (
    COLUMNS,
    HEAD,
    AppendJob,
    AppendManyJob,
    CommitJob,
    Job,
    SqliteWriter,
)
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CheckpointProgress,
    CommitListener,
    CommitListeners,
    Durability,
    EventRegistry,
    EventStore,
    encode_data,
    validate_append,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt, RecordedEvent
from tillflow.engine.upcasting import Upcasting, current_event, current_events

APPLICATION_ID: Final = 0x54494C4C  # "TILL"
SCHEMA_VERSION: Final = 2
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (),  # → 2: events are read at their types' current schema versions (upcast); the
    # releases before ignored the version, so they must not open a file that may hold newer
}
"""Per schema version, the statements that bring a file from it to the next."""
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

SCRATCH_PAGE: Final = bytes(4096)
"""What :meth:`SqliteEventStore.probe_writes` writes beside the database: one page."""
_SYNCHRONOUS: Final = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_RANGES_PER_READ: Final = 200
_EMITTED_BY_MANY: Final = f"SELECT {COLUMNS} FROM events WHERE " + " OR ".join(
    ["(id >= ? AND id <= ?)"] * _RANGES_PER_READ
)
_NO_PREFIX: Final = b"\xff" * EMITTER_PREFIX
"""Pads a short chunk (what it matches, if anything, is dropped)."""


def _id_range(prefix: bytes) -> tuple[bytes, bytes]:
    """The least and greatest ids of one emitter prefix."""
    return prefix + b"\x00\x00", prefix + b"\xff\xff"


def _by_id(event: RecordedEvent) -> bytes:
    return event.id


class SqliteEventStore(EventStore):
    """The embedded store. ``path`` is created if missing.

    Raises :class:`NotATillflowDatabase` if the file is not a tillflow database and
    :class:`SchemaTooNew` if a newer tillflow wrote it; neither touches the file.
    ``max_queued_writes`` bounds the writes waiting for the writer thread; beyond it,
    writers wait for room (see :mod:`tillflow.engine.group_commit`).
    """

    outage_backoff = OutageBackoff(most=1.0)
    """A retry takes the lock if it is free, costing another process nothing: lanes look
    again at least every second, so they move within about a second of it being let go."""

    def __init__(
        self,
        path: str | Path,
        durability: Durability = "full",
        registry: EventRegistry | None = None,
        busy_timeout: float = 30.0,
        recent_events: int = 65_536,
        max_queued_writes: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be one of {sorted(_SYNCHRONOUS)}: {durability!r}")
        require_count("max_queued_writes", max_queued_writes)
        self.path = str(path)
        self.lane_count = 1
        self.registry = registry
        self._upcasting = None if registry is None else registry.upcasting
        """How events read from the file are brought to their current versions."""
        self._ring_upcasting: Upcasting | None = None
        """The same for the ring of recent events, once this store object has appended an
        older version: until then the ring holds only current events (its rows are this
        process's own writes, its events upcast when read from the file)."""
        self.durability = durability
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._listeners = CommitListeners()
        self._closed = False
        self._filling = threading.Lock()
        self.recent = RecentEvents(recent_events)
        _check_file(self.path)
        self._initialise()
        self._writer = SqliteWriter(self._connect, self.recent, durability, busy_timeout)
        self._committer = GroupCommitter(
            self._writer.run_batch,
            self._notify,
            after_delivery=self._writer.maybe_checkpoint,
            name=f"tillflow-writer:{Path(self.path).name}",
            max_queued=max_queued_writes,
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
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the writer checkpoints: see there
        except sqlite3.DatabaseError as error:
            raise self._refused(error) from error
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
        """Check the file is tillflow's (a read: it works while another process holds the
        write lock); create the schema in an empty one."""
        conn = self._connect()
        try:
            empty = conn.execute("PRAGMA application_id").fetchone()[0] == 0
            conn.execute("BEGIN IMMEDIATE" if empty else "BEGIN")
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
            if application_id == APPLICATION_ID and user_version < SCHEMA_VERSION:
                _migrate(conn)
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            raise self._refused(error) from error
        finally:
            conn.close()
            with self._connections_lock:
                self._connections.remove(conn)

    def _refused(self, error: sqlite3.DatabaseError) -> TillflowError:
        """Why the file could not be opened: a blip (locked, unreadable for now), or it is
        no database tillflow can use."""
        transient = blip(error)
        if transient is not None:
            return unavailable(self.path, transient)
        return NotATillflowDatabase(self.path, str(error))

    def _raise_blip(self, error: sqlite3.Error) -> None:
        """Raise :class:`StoreUnavailable` if the writer's ``error`` is a blip (nothing of
        its transaction written); else return, for the caller to re-raise ``error``."""
        transient = blip(error)
        if transient is not None:
            raise unavailable(self.path, transient) from error

    # -- writing ---------------------------------------------------------------------------

    def probe_writes(self) -> None:
        """Take the file's write lock and let it go at once (waiting for it as a write
        would, at most the busy timeout), then write a page to a scratch file beside the
        database, never linked into the directory (a lock taken and released writes no
        byte, so it cannot tell a full disk); :class:`StoreUnavailable` if either fails.
        Writes nothing to the database."""
        conn = self._reader()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.Error as error:
            self._raise_blip(error)
            raise
        try:
            with tempfile.TemporaryFile(dir=Path(self.path).parent) as scratch:
                scratch.write(SCRATCH_PAGE)
                scratch.flush()
        except OSError as error:
            raise StoreUnavailable(
                f"{self.path}: the disk refuses writes ({error.strerror}); retry shortly"
            ) from error

    def _submit(self, job: Job) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise StoreClosed
        return self._committer.submit(job)

    def _append_job(
        self, stream: str, events: Sequence[NewEvent], expected_version: int
    ) -> AppendJob:
        if validate_append(stream, events, self.registry):
            self._ring_upcasting = self._upcasting
        frozen = list(events)
        return AppendJob(stream, frozen, [encode_data(e) for e in frozen], expected_version)

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        written = self._submit(self._append_job(stream, events, expected_version))
        try:
            result: Receipt = written.result()
        except sqlite3.Error as error:
            self._raise_blip(error)
            raise
        return result

    async def append_async(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        job = self._append_job(stream, events, expected_version)
        if self._closed:
            raise StoreClosed
        queued = await self._committer.submit_async(job)  # awaits room while the queue is full
        try:
            result: Receipt = await queued
        except sqlite3.Error as error:
            self._raise_blip(error)
            raise
        return result

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        """Every request is queued as one job, so they share one transaction; each is
        checked and refused on its own."""
        refused: dict[int, TillflowError] = {}
        appends: list[AppendJob] = []
        for index, request in enumerate(requests):
            try:
                appends.append(
                    self._append_job(request.stream, request.events, request.expected_version)
                )
            except TillflowError as refusal:
                refused[index] = refusal
        try:
            done: Iterator[Receipt | TillflowError] = iter(
                self._submit(AppendManyJob(appends)).result() if appends else []
            )
        except sqlite3.Error as error:
            self._raise_blip(error)
            raise
        return [
            refused[index] if index in refused else next(done) for index in range(len(requests))
        ]

    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
    ) -> Receipt:
        encoded = []
        for emitted in effects.emitted:
            if not emitted.checked and validate_append(
                emitted.stream, emitted.events, self.registry
            ):
                self._ring_upcasting = self._upcasting
            encoded.append([encode_data(event) for event in emitted.events])
        job = CommitJob(processor, lane, expected_checkpoint, new_checkpoint, effects, encoded)
        committed = self._submit(job)
        try:
            result: Receipt = committed.result()
        except sqlite3.Error as error:
            self._raise_blip(error)
            raise
        return result

    # -- reading ---------------------------------------------------------------------------

    def head(self, lane: int) -> int:
        if lane != 0:
            return 0
        row = self._reader().execute(HEAD).fetchone()
        return 0 if row is None else int(row[0])

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
        if upto is not None and not getattr(self._local, "snapshot_depth", 0):
            wanted = None if types is None else frozenset(types)
            held = self._recent_span(after, upto, wanted)
            if held is not None:
                return current_events(self._ring_upcasting, held if limit is None else held[:limit])
        sql = f"SELECT {COLUMNS} FROM events WHERE position > ?"
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
        events = current_events(self._upcasting, [RecordedEvent(*row) for row in rows])
        if types is None:
            self.recent.remember(events)
        return events

    def _recent_span(
        self, after: int, upto: int, types: frozenset[str] | None
    ) -> list[RecordedEvent] | None:
        """The events of ``types`` (``None``: all) in ``(after, upto]`` from the ring, the
        ones it lacks read from the file (all types) and remembered; ``None`` when that part
        is far from the newest events (a replay: read filtered instead, and leave the ring to
        the live readers). Processors that read the same new events (written by another
        process) then decode them from the file once between them, not once each."""
        held, through = self.recent.prefix(after, upto, types)
        if through == upto:
            self.recent.hits += 1
            return held
        self.recent.misses += 1
        if not self.recent.near_newest(through):
            return None
        with self._filling:  # processors woken together: one of them reads, the rest wait
            while True:
                more, through = self.recent.prefix(through, upto, types)
                held += more
                if through >= upto:
                    return held
                # only the run the ring lacks (another process's commit), not what follows
                missing = self.recent.missing_through(through, upto)
                rows = self._reader().execute(
                    f"SELECT {COLUMNS} FROM events WHERE position > ? AND position <= ? "
                    "ORDER BY position",
                    (through, missing),
                )
                fresh = current_events(self._upcasting, [RecordedEvent(*row) for row in rows])
                self.recent.remember(fresh)
                held += fresh if types is None else [e for e in fresh if e.type in types]
                through = missing

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        conn = self._reader()
        depth = getattr(self._local, "snapshot_depth", 0)
        if depth == 0:
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchall()  # pin the snapshot
        self._local.snapshot_depth = depth + 1
        try:
            yield
        finally:
            self._local.snapshot_depth = depth
            if depth == 0:
                conn.execute("COMMIT")

    def backup_into(
        self,
        target: sqlite3.Connection,
        pages: int = -1,
        progress: Callable[[int, int, int], object] | None = None,
    ) -> None:
        """Copy the whole file into ``target`` with SQLite's online backup, ``pages`` per
        step (``progress(status, remaining, total)`` after each), as of this thread's
        :meth:`snapshot` (one is taken if none is open). Held across the steps, the snapshot
        keeps the copy consistent and from starting over while others write; writers are
        never blocked (WAL), the WAL only grows until it ends. Blocks until the copy is done;
        ``sqlite3.Error`` from the target (full disk, ...) propagates."""
        with self.snapshot():
            self._reader().backup(target, pages=pages, progress=progress)

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        rows = self._reader().execute(
            f"SELECT {COLUMNS} FROM events WHERE stream = ? AND version > ? AND version <= ? "
            "ORDER BY version",
            (stream, after_version, upto_version if upto_version is not None else 2**62),
        )
        return current_events(self._upcasting, [RecordedEvent(*row) for row in rows])

    def last_event(self, stream: str) -> RecordedEvent | None:
        row = (
            self._reader()
            .execute(
                f"SELECT {COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1",
                (stream,),
            )
            .fetchone()
        )
        return current_event(self._upcasting, None if row is None else RecordedEvent(*row))

    def stream_version(self, stream: str) -> int:
        row = (
            self._reader()
            .execute("SELECT max(version) FROM events WHERE stream = ?", (stream,))
            .fetchone()
        )
        return int(row[0] or 0)

    def emitted_by(self, processor: str, source: RecordedEvent) -> list[RecordedEvent]:
        prefix = emitter_prefix(processor, source.id)
        if not getattr(self._local, "snapshot_depth", 0):
            held = self.recent.emitted(prefix)
            if held is not None:
                return current_events(self._ring_upcasting, held)
        rows = self._reader().execute(
            f"SELECT {COLUMNS} FROM events WHERE id >= ? AND id <= ? ORDER BY id",
            _id_range(prefix),
        )
        return current_events(self._upcasting, [RecordedEvent(*row) for row in rows])

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        """From the ring where held, the rest with one statement per
        :data:`_RANGES_PER_READ` sources: an ``OR`` of id ranges, which SQLite answers with
        one seek of the id index per range."""
        found: dict[bytes, list[RecordedEvent]] = {}
        wanted: dict[bytes, bytes] = {}  # emitter prefix → source id
        in_snapshot = getattr(self._local, "snapshot_depth", 0)
        for source in sources:
            prefix = emitter_prefix(processor, source.id)
            held = None if in_snapshot else self.recent.emitted(prefix)
            if held is not None:
                found[source.id] = current_events(self._ring_upcasting, held)
            else:
                wanted[prefix] = source.id
                found[source.id] = []
        prefixes = list(wanted)
        reader = self._reader()
        upcast = None if self._upcasting is None else self._upcasting.upcast
        for start in range(0, len(prefixes), _RANGES_PER_READ):
            chunk = prefixes[start : start + _RANGES_PER_READ]
            chunk += [_NO_PREFIX] * (_RANGES_PER_READ - len(chunk))  # one statement, cached
            bounds = [bound for prefix in chunk for bound in _id_range(prefix)]
            for row in reader.execute(_EMITTED_BY_MANY, bounds):
                event = RecordedEvent(*row)
                if upcast is not None:
                    event = upcast(event)
                source_id = wanted.get(event.id[:EMITTER_PREFIX])
                if source_id is not None:  # not an id that merely matched the padding
                    found[source_id].append(event)
        for events in found.values():
            events.sort(key=_by_id)
        return found

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        rows = self._reader().execute(
            f"SELECT {COLUMNS} FROM events WHERE causation_id = ? ORDER BY position",
            (causation_id,),
        )
        return current_events(self._upcasting, [RecordedEvent(*row) for row in rows])

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        row = (
            self._reader()
            .execute(f"SELECT {COLUMNS} FROM events WHERE id = ?", (event_id,))
            .fetchone()
        )
        return current_event(self._upcasting, None if row is None else RecordedEvent(*row))

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

    def checkpoint_progress(self, processor: str, lane: int) -> CheckpointProgress:
        row = (
            self._reader()
            .execute(
                "SELECT position, updated_at FROM checkpoints WHERE processor = ? AND lane = ?",
                (processor, lane),
            )
            .fetchone()
        )
        return CheckpointProgress(0, None) if row is None else CheckpointProgress(*row)

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
        """Transactions committed and jobs run by the writer thread (group commit at work),
        the time it waited for the file's write lock, and the WAL checkpoints it ran."""
        return {
            **self._committer.statistics(),
            "lock_wait_ms": round(self._writer.lock_wait * 1000),
            "wal_checkpoints": self._writer.checkpoints,
        }

    # -- lifecycle -------------------------------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def _notify(self) -> None:
        self._listeners.notify()

    def close(self) -> None:
        if self._closed:
            return
        self._committer.close()
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older file to :data:`SCHEMA_VERSION`, all steps in one transaction (another
    process may have migrated it meanwhile: the version is read again under the lock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
