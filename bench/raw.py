"""The reference: the same rows written with plain :mod:`sqlite3`, no engine in between.

The table has the events table's columns and keys (position as the row id, a unique event
id, a unique (stream, version)), the database is in WAL mode with ``synchronous=FULL``, and
the rows are built before the clock starts: what is timed is SQLite's own insert cost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from bench import workload
from tillflow.engine import new_event_id

_TABLE: Final = """
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
)
"""
_INSERT: Final = (
    "INSERT INTO events (position, id, stream, version, type, schema_version, data, "
    "recorded_at, causation_id, correlation_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
)

Row = tuple[Any, ...]


def connect(path: Path) -> sqlite3.Connection:
    """A fresh database at ``path``: WAL, ``synchronous=FULL``, autocommit mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_TABLE)
    return conn


def rows(first_position: int, stream: str, first_version: int, count: int) -> list[Row]:
    """``count`` rows of the workload, as the engine would store them."""
    now = time.time()
    start = first_position - 1
    return [
        (
            start + offset + 1,
            new_event_id(),
            stream,
            first_version + offset,
            event.type,
            event.schema_version,
            msgspec.json.encode(event.data),
            now,
            None,
            None,
        )
        for offset, event in enumerate(workload.events(start, count))
    ]


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def batched_insert_rate(path: Path, batches: int, batch_size: int) -> float:
    """Rows per second: ``batches`` transactions of ``executemany(batch_size rows)``."""
    prepared: list[Sequence[Row]] = [
        rows(batch * batch_size + 1, workload.stream_name("batch", batch), 1, batch_size)
        for batch in range(batches)
    ]
    conn = connect(path)
    try:
        started = time.perf_counter()
        for batch_rows in prepared:
            conn.execute("BEGIN")
            conn.executemany(_INSERT, batch_rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        written = _count(conn)
    finally:
        conn.close()
    if written != batches * batch_size:
        raise AssertionError(f"raw batched insert wrote {written} rows, not {batches * batch_size}")
    return written / elapsed


def one_per_commit_rate(path: Path, commits: int) -> float:
    """Rows per second when every row is its own transaction (one fsync each)."""
    prepared = rows(1, workload.stream_name("single", 0), 1, commits)
    conn = connect(path)
    try:
        started = time.perf_counter()
        for row in prepared:
            conn.execute(_INSERT, row)  # autocommit: one transaction per statement
        elapsed = time.perf_counter() - started
        written = _count(conn)
    finally:
        conn.close()
    if written != commits:
        raise AssertionError(f"raw single inserts wrote {written} rows, not {commits}")
    return written / elapsed
