"""WAL checkpoints on a real file: the writer runs them between groups, so each completes and
the next transaction starts the WAL over; the file stays small however much is written.

(A checkpoint on a thread of its own was tried and measured: with appends going on it never
caught up with the writer, the WAL was never started over and grew with every commit — 34 MB
for the 12 MB written here. This test is what caught it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tillflow.engine import NewEvent, SqliteEventStore
from tillflow.engine.sqlite_writer import SqliteWriter

COMMITS = 300
PAYLOAD = "x" * 2_000
EVENTS_PER_COMMIT = 20  # ~40 KB a commit, ~12 MB in all


def _append_many_commits(store: SqliteEventStore, wal: Path) -> tuple[int, int]:
    """One append per commit; the most the WAL file held, and the bytes of data written."""
    largest = 0
    for commit in range(COMMITS):
        events = [NewEvent("Noted", {"n": commit, "text": PAYLOAD})] * EVENTS_PER_COMMIT
        store.append(f"s-{commit}", events)
        largest = max(largest, wal.stat().st_size)
    return largest, COMMITS * EVENTS_PER_COMMIT * len(PAYLOAD)


def test_checkpoints_start_the_wal_over_so_it_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    try:
        largest, written = _append_many_commits(store, Path(f"{path}-wal"))
        assert store.writer_statistics()["wal_checkpoints"] > 0
        assert largest < written / 4, (largest, written)
        assert store.head(0) == COMMITS * EVENTS_PER_COMMIT
    finally:
        store.close()


def test_negative_control_without_checkpoints_the_wal_holds_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqliteWriter, "maybe_checkpoint", lambda self: None)
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    try:
        largest, written = _append_many_commits(store, Path(f"{path}-wal"))
        assert store.writer_statistics()["wal_checkpoints"] == 0
        assert largest >= written  # what the check above would catch
    finally:
        store.close()
