"""The PostgreSQL writers: how appends and processor batches become transactions.

Every transaction that records events first locks the head row of each lane it writes
(``lanes``, ascending lane order), assigns positions after the head and moves the head in
the same transaction, so the row stays locked until commit. Positions are therefore dense
per lane and in commit order: a transaction that takes positions after another's waits for
that one to commit (or roll back, which undoes its head move too). Readers need no gap logic.

Appends are grouped per lane (one :class:`LaneWriter` per lane behind a group committer):

- *fast path*, every append expecting a new stream (a checkout): move the head and insert
  the rows in one statement (one round trip, its own transaction), taking the streams to be
  new and the ids unused; the unique indexes check both, and a clash (which undoes the head
  move with the rest) sends the group down the general path;
- *general path*: lock the head, fetch the streams' versions and the recorded events of
  the given ids (one round trip), decide each append in Python (a refusal writes nothing
  of its own and touches no other append), then move the head, insert and commit (one
  round trip);
- a clash there (an id just recorded on another lane) re-runs each append alone.

Nothing here sends ``NOTIFY``: waking readers is left to polling (or a listener outside).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
import psycopg
import psycopg.errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    EventIdReused,
    TillflowError,
)
from tillflow.engine.group_commit import Failed
from tillflow.engine.ids import format_id, new_event_id
from tillflow.engine.lanes import lane_of
from tillflow.engine.leasing import Fence
from tillflow.engine.postgres.errors import LeaseLost, ViewRowChanged
from tillflow.engine.postgres.leases import FENCE
from tillflow.engine.store import BatchEffects, check_not_past, receipt_of, repeat_receipt
from tillflow.engine.types import ANY_VERSION, NO_STREAM, NewEvent, Receipt, RecordedEvent
from tillflow.engine.versions import base_of

COLUMNS: Final = (
    "id, stream, version, lane, position, type, schema_version, data, recorded_at, "
    "causation_id, correlation_id"
)
_TARGET: Final = (
    "INSERT INTO events (lane, position, id, stream, version, type, schema_version, data, "
    "recorded_at, causation_id, correlation_id) "
)
_COLUMN_TYPES: Final = (
    "int",
    "bigint",
    "bytea",
    "text",
    "bigint",
    "text",
    "int",
    "bytea",
    "float8",
    "bytea",
    "bytea",
)
_ALIAS: Final = " AS u(lane, rel, id, stream, version, type, sv, data, at, cause, corr)"
_VALUES_UPTO: Final = 4
"""Up to this many rows are sent as one ``VALUES`` list of typed parameters, more as one
JSON document (:func:`_document`): psycopg dumps scalars in C but walks arrays in Python
(~1 µs an element: 40 % of a worker's CPU for Inventory's batches), msgspec encodes the
document in C and the server reads it in C. Four rows are 44 parameters: psycopg parses
a query of more than 50 anew on every call (its cache stops there). 20,000 events in
appends of 8 rows: client CPU 2.28 s as ``VALUES``, 1.58 s as documents (server 1.36 s
both); of 16: 1.56 against 1.23 s (server 0.80 against 0.88 s)."""
_BYTES: Final = frozenset({2, 7, 9, 10})
"""The columns that are ``bytea`` (base64 in the document, as msgspec encodes bytes)."""
_encode: Final = msgspec.json.encode
_FROM_DOCUMENT: Final = ", ".join(
    f"decode(r->>{column}, 'base64')" if column in _BYTES else f"(r->>{column})::{kind}"
    for column, kind in enumerate(_COLUMN_TYPES)
)


def _row(e: RecordedEvent) -> tuple[Any, ...]:
    """An event's values in :data:`_ALIAS`'s column order."""
    return (
        e.lane,
        e.position,
        e.id,
        e.stream,
        e.version,
        e.type,
        e.schema_version,
        e.data,
        e.recorded_at,
        e.causation_id,
        e.correlation_id,
    )


def _document(rows: Sequence[RecordedEvent]) -> Jsonb:
    """The rows as one ``jsonb`` array of arrays, in :data:`_ALIAS`'s column order."""
    return Jsonb(_encode([_row(e) for e in rows]), dumps=bytes.decode)


@functools.cache
def _source(rows: int) -> str:
    """Where the insert takes ``rows`` rows from, in :data:`_ALIAS`'s columns (``rows`` 0:
    one JSON document, for any number)."""
    if rows == 0:
        return f"(SELECT {_FROM_DOCUMENT} FROM jsonb_array_elements(%s) r)" + _ALIAS
    row = "(" + ", ".join(f"%s::{kind}" for kind in _COLUMN_TYPES) + ")"
    return "(VALUES " + ", ".join([row] * rows) + ")" + _ALIAS


@functools.cache
def _insert(rows: int) -> str:
    return _TARGET + "SELECT * FROM " + _source(rows)


@functools.cache
def _append_after_head(rows: int) -> str:
    """The fast path in one statement, so one transaction of its own (autocommit): move
    the head, insert after the old head, return the new one. A unique clash undoes both."""
    return (
        "WITH h AS (UPDATE lanes SET head = head + %s WHERE lane = %s RETURNING head), "
        "i AS ("
        + _TARGET
        + "SELECT u.lane, h.head - %s + u.rel, u.id, u.stream, u.version, u.type, u.sv, "
        "u.data, u.at, u.cause, u.corr FROM h, " + _source(rows) + ") SELECT head FROM h"
    )


_LOCK: Final = "SELECT head FROM lanes WHERE lane = %s FOR UPDATE"
_MOVE: Final = "UPDATE lanes SET head = %s WHERE lane = %s"
_LOCK_MANY: Final = (
    "SELECT lane, head FROM lanes WHERE lane = ANY(%s::int[]) ORDER BY lane FOR UPDATE"
)
"""The head rows of the lanes a batch emits to, locked in ascending lane order (the rows
are locked as the sort hands them up): one statement, however many lanes."""
_MOVE_MANY: Final = (
    "UPDATE lanes SET head = u.head FROM unnest(%s::int[], %s::bigint[]) u(lane, head) "
    "WHERE lanes.lane = u.lane"
)
VERSIONS: Final = (
    "SELECT s, (SELECT max(version) FROM events WHERE stream = s) FROM unnest(%s::text[]) s"
)
"""One backward index seek per stream."""
_BY_IDS: Final = f"SELECT {COLUMNS} FROM events WHERE id = ANY(%s::bytea[])"
_CAS_FIRST: Final = (
    "INSERT INTO checkpoints (processor, lane, position, updated_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (processor, lane) DO UPDATE SET position = excluded.position, "
    "updated_at = excluded.updated_at WHERE checkpoints.position = 0 RETURNING position"
)
_HOLD_ABSENT: Final = (
    "INSERT INTO checkpoints (processor, lane, position, updated_at) VALUES (%s, %s, 0, 0) "
    "ON CONFLICT DO NOTHING RETURNING position"
)
_CAS: Final = (
    "UPDATE checkpoints SET position = %s, updated_at = %s "
    "WHERE processor = %s AND lane = %s AND position = %s RETURNING position"
)
_ROWS: Final = "jsonb_array_elements(%s) r"
"""A batch's view rows as one document, ``[view, key, seen, new]`` each (bytes in base64,
as msgspec encodes them): one statement per kind of write, whatever the number of rows."""
_SEEN, _NEW = "decode(r->>2, 'base64')", "decode(r->>3, 'base64')"
_AT: Final = "v.view = r->>0 AND v.key = r->>1"
_LOCK_ROWS: Final = (
    f"SELECT 1 FROM views v JOIN {_ROWS} ON {_AT} ORDER BY v.view, v.key FOR UPDATE OF v"
)
"""Every existing row the batch reads or writes, locked in key order first: two batches
on the same rows never deadlock."""
_GUARDED: Final = {
    # each returns the rows it found as the batch read them (and wrote, if it writes)
    "update": (
        f"UPDATE views v SET value = {_NEW} FROM {_ROWS} WHERE {_AT} AND v.value = {_SEEN} "
        "RETURNING v.view, v.key"
    ),
    "insert": (
        f"INSERT INTO views (view, key, value) SELECT r->>0, r->>1, {_NEW} FROM {_ROWS} "
        "ON CONFLICT (view, key) DO NOTHING RETURNING view, key"
    ),
    "delete": f"DELETE FROM views v USING {_ROWS} WHERE {_AT} AND v.value = {_SEEN} "
    "RETURNING v.view, v.key",
    "absent": f"SELECT r->>0, r->>1 FROM {_ROWS} WHERE NOT EXISTS "
    f"(SELECT 1 FROM views v WHERE {_AT})",
    "unchanged": f"SELECT v.view, v.key FROM views v JOIN {_ROWS} ON {_AT} AND v.value = {_SEEN}",
}
"""Rows a batch read are written (or checked) only if still as read: workers sharing a
group's lanes may both touch a row that spans lanes (a total)."""
_UPSERT_VIEWS: Final = (
    f"INSERT INTO views (view, key, value) SELECT r->>0, r->>1, {_NEW} FROM {_ROWS} "
    "ON CONFLICT (view, key) DO UPDATE SET value = excluded.value"
)
_DELETE_VIEWS: Final = f"DELETE FROM views v USING {_ROWS} WHERE {_AT}"
_ALONE_TRIES: Final = 3


class Append:
    """One caller's append, validated and encoded before it is queued."""

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


class AppendJob:
    """What the group committer queues: one append, or several (``many``) answered
    together as a list of outcomes."""

    __slots__ = ("appends", "many")

    def __init__(self, appends: list[Append], many: bool) -> None:
        self.appends = appends
        self.many = many

    def __call__(self, outcomes: list[Receipt | TillflowError]) -> Any:
        """This job's result from the outcomes of its appends."""
        if self.many:
            return outcomes
        [outcome] = outcomes
        return Failed(outcome) if isinstance(outcome, TillflowError) else outcome


class Plan:
    """The events one transaction records, decided in Python once the heads are locked and
    the versions and ids of the streams involved are known."""

    __slots__ = ("heads", "known", "lane_count", "now", "records", "versions")

    def __init__(
        self,
        heads: dict[int, int],
        versions: dict[str, int],
        known: dict[bytes, RecordedEvent],
        lane_count: int,
    ) -> None:
        self.heads = heads
        self.versions = versions
        self.known = known
        """Recorded events by id: fetched, plus those this plan records."""
        self.lane_count = lane_count
        self.now = time.time()
        self.records: list[RecordedEvent] = []

    def record(
        self,
        stream: str,
        events: Sequence[NewEvent],
        encoded: Sequence[bytes],
        expected_version: int,
    ) -> list[RecordedEvent]:
        """Check the version and record ``events``; :class:`ConcurrencyConflict` if not."""
        current = self.versions.get(stream) or 0
        if expected_version not in (ANY_VERSION, current):
            raise ConcurrencyConflict(stream, expected_version, current)
        lane = lane_of(stream, self.lane_count)
        head, now = self.heads[lane], self.now
        recorded = [
            RecordedEvent(
                event.id or new_event_id(),
                stream,
                current + offset,
                lane,
                head + offset,
                event.type,
                event.schema_version,
                data,
                now,
                event.causation_id,
                event.correlation_id,
            )
            for offset, (event, data) in enumerate(zip(events, encoded, strict=True), start=1)
        ]
        self.heads[lane] = head + len(recorded)
        self.versions[stream] = current + len(recorded)
        self.records.extend(recorded)
        return recorded

    def append(self, append: Append) -> Receipt | TillflowError:
        """One caller's append: its receipt (the original one for an exact repeat), or the
        refusal; a refusal records nothing."""
        try:
            explicit = [event.id for event in append.events if event.id is not None]
            if explicit and not self.known.keys().isdisjoint(explicit):
                repeat = repeat_receipt(
                    append.stream, append.events, append.encoded, self.known.get
                )
                if repeat is not None:
                    return repeat
            if len(set(explicit)) != len(explicit):
                twice = next(i for i in explicit if explicit.count(i) > 1)
                raise EventIdReused(format_id(twice), "batch")
            recorded = self.record(
                append.stream, append.events, append.encoded, append.expected_version
            )
        except TillflowError as refusal:
            return refusal
        for event in recorded:
            self.known[event.id] = event
        return receipt_of(recorded)

    def rows(self) -> tuple[int, list[Any]]:
        """The records as the insert's parameters: the ``rows`` key of :func:`_source`
        and the values, row by row for a few records, one document for many."""
        rows = self.records
        if len(rows) <= _VALUES_UPTO:
            return len(rows), [value for e in rows for value in _row(e)]
        return 0, [_document(rows)]


class LaneWriter:
    """Runs groups of appends to one lane (only ever from that lane's committer thread)."""

    def __init__(self, pool: ConnectionPool[Any], lane: int, lane_count: int) -> None:
        self._pool = pool
        self._lane = lane
        self._lane_count = lane_count

    def run_batch(self, jobs: Sequence[AppendJob]) -> list[Any]:
        """Per job its result; raises (failing every job) only when the database fails."""
        appends = [append for job in jobs for append in job.appends]
        outcomes = self._run(appends)
        results: list[Any] = []
        start = 0
        for job in jobs:
            results.append(job(outcomes[start : start + len(job.appends)]))
            start += len(job.appends)
        return results

    def _run(self, appends: list[Append]) -> list[Receipt | TillflowError]:
        if all(append.expected_version == NO_STREAM for append in appends):
            try:
                return self._fast(appends)
            except psycopg.errors.UniqueViolation:
                pass  # a stream or an id is not new after all: the general path decides
        try:
            return self._general(appends)
        except psycopg.errors.UniqueViolation:
            return [self._alone(append) for append in appends]

    def _alone(self, append: Append) -> Receipt | TillflowError:
        """One append in its own transaction: a clash with an id recorded since the fetch
        is seen by the next fetch (the clashing transaction has committed)."""
        for attempt in range(_ALONE_TRIES):
            try:
                return self._general([append])[0]
            except psycopg.errors.UniqueViolation:
                if attempt == _ALONE_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _fast(self, appends: list[Append]) -> list[Receipt | TillflowError]:
        lane = self._lane
        plan = Plan({lane: 0}, {}, {}, self._lane_count)
        outcomes = [plan.append(append) for append in appends]
        if not plan.records:
            return outcomes
        count = len(plan.records)
        source, values = plan.rows()
        with self._pool.connection() as conn:
            row = conn.execute(
                _append_after_head(source), (count, lane, count, *values), binary=True
            ).fetchone()
        assert row is not None
        base = int(row[0]) - count
        return [
            Receipt({lane: base + outcome.positions[lane]}, outcome.streams)
            if isinstance(outcome, Receipt)
            else outcome
            for outcome in outcomes
        ]

    def _general(self, appends: list[Append]) -> list[Receipt | TillflowError]:
        lane = self._lane
        streams = sorted({append.stream for append in appends})
        ids = [event.id for append in appends for event in append.events if event.id]
        with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            locked = conn.execute(_LOCK, (lane,))
            versions = conn.execute(VERSIONS, (streams,))
            known = conn.execute(_BY_IDS, (ids,)) if ids else None
            row = locked.fetchone()
            assert row is not None
            plan = Plan(
                {lane: int(row[0])},
                {stream: int(version or 0) for stream, version in versions.fetchall()},
                {} if known is None else _by_id(known.fetchall()),
                self._lane_count,
            )
            outcomes = [plan.append(append) for append in appends]
            if plan.records:
                conn.execute(_MOVE, (plan.heads[lane], lane))
                source, values = plan.rows()
                conn.execute(_insert(source), values)
        return outcomes


def commit_batch(
    pool: ConnectionPool[Any],
    lane_count: int,
    processor: str,
    lane: int,
    expected: int,
    new: int,
    effects: BatchEffects,
    encoded: Sequence[Sequence[bytes]],
    fence: Fence | None = None,
) -> Receipt:
    """A processor batch in one transaction: the lease check when ``fence`` is given (the
    lease of the processor's group, whatever version of it commits; the lease row locked
    ``FOR SHARE``, so no takeover until this commits), the checkpoint compare-and-set
    (first, so that a stale batch stops there), the head rows of the lanes it emits to
    (ascending), its events, its view rows (those it read only if unchanged, in key order).
    Raises :class:`LeaseLost`, :class:`CheckpointConflict` / :class:`ConcurrencyConflict` /
    :class:`ViewRowChanged` with nothing written."""
    emitted = effects.emitted
    streams = sorted({item.stream for item in emitted})
    lanes = sorted({lane_of(stream, lane_count) for stream in streams})
    now = time.time()
    with pool.connection() as conn, conn.pipeline(), conn.transaction():
        fenced = (
            None
            if fence is None
            else conn.execute(FENCE, (base_of(processor), lane, fence.owner, fence.epoch))
        )
        if expected == 0:
            moved = conn.execute(_CAS_FIRST, (processor, lane, new, now))
        else:
            moved = conn.execute(_CAS, (new, now, processor, lane, expected))
        check_not_past(effects, functools.partial(_checkpoint_shared, conn))
        locked = conn.execute(_LOCK_MANY, (lanes,)) if lanes else None
        versions = conn.execute(VERSIONS, (streams,)) if streams else None
        if fenced is not None and fenced.fetchone() is None:
            assert fence is not None
            raise LeaseLost(processor, lane, fence.owner, fence.epoch)
        if moved.fetchone() is None:
            actual = conn.execute(
                "SELECT position FROM checkpoints WHERE processor = %s AND lane = %s",
                (processor, lane),
            ).fetchone()
            raise CheckpointConflict(processor, lane, expected, 0 if actual is None else actual[0])
        heads = {} if locked is None else {int(k): int(h) for k, h in locked.fetchall()}
        plan = Plan(
            dict(heads),
            {} if versions is None else {s: int(v or 0) for s, v in versions.fetchall()},
            {},
            lane_count,
        )
        for item, data in zip(emitted, encoded, strict=True):
            plan.record(item.stream, item.events, data, item.expected_version)
        grown = {each: plan.heads[each] for each in lanes if plan.heads[each] != heads[each]}
        if grown:
            conn.execute(_MOVE_MANY, (list(grown), list(grown.values())))
        if plan.records:
            source, values = plan.rows()
            conn.execute(_insert(source), values)
        _write_rows(conn, processor, effects)
    return Receipt(grown, {item.stream: plan.versions[item.stream] for item in emitted})


def _checkpoint_shared(conn: psycopg.Connection[Any], processor: str, lane: int) -> int:
    """A checkpoint held where it is until this transaction ends: its row locked ``FOR
    SHARE`` (a batch moving it waits); a checkpoint without a row yet gets one that is
    deleted at once, and a first batch's insert of that key waits on it just the same."""
    key = (processor, lane)
    if conn.execute(_HOLD_ABSENT, key).fetchone() is not None:
        conn.execute("DELETE FROM checkpoints WHERE processor = %s AND lane = %s", key)
        return 0
    row = conn.execute(
        "SELECT position FROM checkpoints WHERE processor = %s AND lane = %s FOR SHARE", key
    ).fetchone()
    return 0 if row is None else int(row[0])


def _write_rows(conn: psycopg.Connection[Any], processor: str, effects: BatchEffects) -> None:
    """The batch's view rows, one statement per kind (in the caller's pipeline): the rows
    it read written or checked only if still as read (:class:`ViewRowChanged` naming the
    first that is not), the others written as they are."""
    views, read = effects.views, effects.read
    if not views and not read:
        return
    guarded: dict[str, list[tuple[str, str, bytes | None, bytes | None]]] = {}
    for (view, key), seen in read.items():
        written = (view, key) in views
        new = views.get((view, key))
        if written and new is not None:
            kind = "insert" if seen is None else "update"
        elif written and seen is not None:
            kind = "delete"
        else:
            kind = "absent" if seen is None else "unchanged"
        guarded.setdefault(kind, []).append((view, key, seen, new))
    blind = [
        (view, key, None, new) for (view, key), new in views.items() if (view, key) not in read
    ]
    everything = [(view, key, None, None) for view, key in sorted({*views, *read})]
    conn.execute(_LOCK_ROWS, (_rows(everything),))
    checks = [
        (rows, conn.execute(_GUARDED[kind], (_rows(rows),))) for kind, rows in guarded.items()
    ]
    upserts = [row for row in blind if row[3] is not None]
    deletes = [row for row in blind if row[3] is None]
    if upserts:
        conn.execute(_UPSERT_VIEWS, (_rows(upserts),))
    if deletes:
        conn.execute(_DELETE_VIEWS, (_rows(deletes),))
    for rows, cursor in checks:
        found = {(str(view), str(key)) for view, key in cursor.fetchall()}
        changed = sorted({(view, key) for view, key, _, _ in rows} - found)
        if changed:
            raise ViewRowChanged(processor, *changed[0])


def _rows(rows: Sequence[tuple[str, str, bytes | None, bytes | None]]) -> Jsonb:
    return Jsonb(_encode(rows), dumps=bytes.decode)


def _by_id(rows: Iterable[tuple[Any, ...]]) -> dict[bytes, RecordedEvent]:
    return {bytes(row[0]): RecordedEvent(*row) for row in rows}
