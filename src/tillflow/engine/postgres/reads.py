"""The read half of :class:`~tillflow.engine.postgres.store.PostgresEventStore`: every
query of the port, on a pooled connection (autocommit: each statement sees what was
committed before it), or inside :meth:`PostgresReads.snapshot` on the thread's own
``REPEATABLE READ`` transaction. Driver errors become :class:`DatabaseUnavailable`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool

from tillflow.engine.errors import StoreClosed
from tillflow.engine.ids import EMITTER_PREFIX, emitter_prefix
from tillflow.engine.postgres.errors import DatabaseUnavailable
from tillflow.engine.postgres.lane_windows import LaneWindows
from tillflow.engine.postgres.writer import COLUMNS, VERSIONS
from tillflow.engine.store import CheckpointProgress
from tillflow.engine.types import RecordedEvent
from tillflow.engine.upcasting import Upcasting, current_events

_LEAST, _GREATEST = b"\x00\x00", b"\xff\xff"
"""What follows an emitter prefix in the least and the greatest id it covers."""
_EMITTED_BY_MANY: Final = (
    "SELECT e.* FROM generate_series(0, %s::int - 1) n CROSS JOIN LATERAL "
    f"(SELECT substring(%s::bytea FROM n * {EMITTER_PREFIX} + 1 FOR {EMITTER_PREFIX}) AS p) r "
    f"CROSS JOIN LATERAL (SELECT {COLUMNS} FROM events WHERE id BETWEEN "
    f"r.p || '\\x{_LEAST.hex()}'::bytea AND r.p || '\\x{_GREATEST.hex()}'::bytea OFFSET 0) e "
    "ORDER BY e.id"
)
"""An index range scan per source, whatever the planner knows of the table: as a plain join
(``OFFSET 0`` keeps the subquery from being merged into one) a table never analyzed yet is
walked whole once per range: 1.3 s for 350 sources among 12,000 events, growing with both.
The prefixes go as one ``bytea`` (the count, then the prefixes end to end): psycopg dumps
a list parameter an element at a time in Python, ~5 % of the report's worker."""


def _id_range(prefix: bytes) -> tuple[bytes, bytes]:
    """The least and greatest ids of one emitter prefix."""
    return prefix + _LEAST, prefix + _GREATEST


class PostgresReads:
    """Mixed into the store, which sets these attributes."""

    database: str
    _pool: ConnectionPool[Any]
    _local: threading.local
    _closed: bool
    _upcasting: Upcasting | None
    _windows: LaneWindows
    """Lane reads shared by this process's processors (:mod:`.lane_windows`)."""
    _heads_seen: dict[int, int]
    """Per lane, the highest head read: every position up to it is committed."""

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed

    # -- reading ---------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement, in the binary format: the events' ids and data
        (``bytea``) are neither hex-encoded by the server nor decoded here."""
        self._check_open()
        held: psycopg.Connection[tuple[Any, ...]] | None = getattr(self._local, "snapshot", None)
        try:
            if held is not None:
                return held.execute(sql, params, binary=True).fetchall()
            with self._pool.connection() as conn:
                rows: list[tuple[Any, ...]] = conn.execute(sql, params, binary=True).fetchall()
                return rows
        except psycopg.Error as error:
            raise DatabaseUnavailable(self.database, reason(error)) from error

    def _events(self, sql: str, params: Sequence[Any] = ()) -> list[RecordedEvent]:
        events = [RecordedEvent(*row) for row in self._rows(sql, params)]
        return current_events(self._upcasting, events)

    def head(self, lane: int) -> int:
        rows = self._rows("SELECT head FROM lanes WHERE lane = %s", (lane,))
        head = int(rows[0][0]) if rows else 0
        self._saw_head(lane, head)
        return head

    def heads(self) -> dict[int, int]:
        heads = {int(lane): int(head) for lane, head in self._rows("SELECT lane, head FROM lanes")}
        for lane, head in heads.items():
            self._saw_head(lane, head)
        return heads

    def _saw_head(self, lane: int, head: int) -> None:
        if head > self._heads_seen.get(lane, 0):
            self._heads_seen[lane] = head

    def read(
        self,
        lane: int,
        after: int,
        upto: int | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        if (
            types is not None
            and upto is not None
            and limit is None
            and upto <= self._heads_seen.get(lane, 0)
            and getattr(self._local, "snapshot", None) is None
        ):  # committed positions, read as of now: shared with this process's other readers
            return self._windows.read(
                lane,
                after,
                upto,
                frozenset(types),
                lambda low, high, kinds: self._read_lane(lane, low, high, kinds, None),
            )
        return self._read_lane(lane, after, upto, types, limit)

    def _read_lane(
        self,
        lane: int,
        after: int,
        upto: int | None,
        types: Collection[str] | None,
        limit: int | None,
    ) -> list[RecordedEvent]:
        sql = f"SELECT {COLUMNS} FROM events WHERE lane = %s AND position > %s"
        params: list[Any] = [lane, after]
        if upto is not None:
            sql += " AND position <= %s"
            params.append(upto)
        if types is not None:
            names = list(types)
            if not names:
                return []
            sql += " AND type = ANY(%s::text[])"
            params.append(names)
        sql += " ORDER BY position"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return self._events(sql, params)

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        return self._events(
            f"SELECT {COLUMNS} FROM events WHERE stream = %s AND version > %s "
            "AND version <= %s ORDER BY version",
            (stream, after_version, upto_version if upto_version is not None else 2**62),
        )

    def last_event(self, stream: str) -> RecordedEvent | None:
        found = self._events(
            f"SELECT {COLUMNS} FROM events WHERE stream = %s ORDER BY version DESC LIMIT 1",
            (stream,),
        )
        return found[0] if found else None

    def stream_version(self, stream: str) -> int:
        [(_, version)] = self._rows(VERSIONS, ([stream],))
        return int(version or 0)

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        return self._events(
            f"SELECT {COLUMNS} FROM events WHERE causation_id = %s ORDER BY lane, position",
            (causation_id,),
        )

    def emitted_by(self, processor: str, source: RecordedEvent) -> list[RecordedEvent]:
        return self._events(
            f"SELECT {COLUMNS} FROM events WHERE id BETWEEN %s AND %s ORDER BY id",
            _id_range(emitter_prefix(processor, source.id)),
        )

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        """One statement: the id ranges of every source's emitter prefix, joined."""
        wanted = {emitter_prefix(processor, source.id): source.id for source in sources}
        found: dict[bytes, list[RecordedEvent]] = {source.id: [] for source in sources}
        if not wanted:
            return found
        for event in self._events(_EMITTED_BY_MANY, (len(wanted), b"".join(wanted))):
            found[wanted[event.id[:EMITTER_PREFIX]]].append(event)
        return found

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        found = self._events(f"SELECT {COLUMNS} FROM events WHERE id = %s", (event_id,))
        return found[0] if found else None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One ``REPEATABLE READ`` read-only transaction on a connection of this thread's
        own until the block ends (nested blocks share it)."""
        if getattr(self._local, "snapshot", None) is not None:
            yield
            return
        self._check_open()
        try:
            conn = self._pool.getconn()
        except psycopg.Error as error:
            raise DatabaseUnavailable(self.database, reason(error)) from error
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.Error as error:
            self._pool.putconn(conn)
            raise DatabaseUnavailable(self.database, reason(error)) from error
        self._local.snapshot = conn
        try:
            yield
        finally:
            self._local.snapshot = None
            with contextlib.suppress(psycopg.Error):  # read only: a lost session lost nothing
                conn.execute("ROLLBACK")
            self._pool.putconn(conn)  # the pool discards a broken connection

    # -- checkpoints and views -------------------------------------------------------------

    def checkpoint(self, processor: str, lane: int) -> int:
        rows = self._rows(
            "SELECT position FROM checkpoints WHERE processor = %s AND lane = %s",
            (processor, lane),
        )
        return int(rows[0][0]) if rows else 0

    def checkpoint_progress(self, processor: str, lane: int) -> CheckpointProgress:
        rows = self._rows(
            "SELECT position, updated_at FROM checkpoints WHERE processor = %s AND lane = %s",
            (processor, lane),
        )
        if not rows:
            return CheckpointProgress(0, None)
        return CheckpointProgress(int(rows[0][0]), float(rows[0][1]))

    def checkpoints(self) -> dict[str, dict[int, int]]:
        result: dict[str, dict[int, int]] = {}
        for processor, lane, position in self._rows(
            "SELECT processor, lane, position FROM checkpoints"
        ):
            result.setdefault(processor, {})[int(lane)] = int(position)
        return result

    def read_view(self, view: str, key: str) -> bytes | None:
        rows = self._rows("SELECT value FROM views WHERE view = %s AND key = %s", (view, key))
        return bytes(rows[0][0]) if rows else None

    def view_rows(self, view: str) -> Iterator[tuple[str, bytes]]:
        rows = self._rows("SELECT key, value FROM views WHERE view = %s ORDER BY key", (view,))
        return iter([(str(key), bytes(value)) for key, value in rows])


def reason(error: psycopg.Error) -> str:
    """The driver's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__
