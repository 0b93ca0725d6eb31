"""The SQLite backend on real files: what it refuses to open, what survives a reopen, and two
store objects (as two processes would) sharing one file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tillflow.engine import (
    BatchEffects,
    NewEvent,
    NotATillflowDatabase,
    Processor,
    RecordedEvent,
    Runtime,
    SchemaTooNew,
    Session,
    SqliteEventStore,
    StoreUnavailable,
)
from tillflow.engine.sqlite import SCHEMA_VERSION


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"shopping list: eggs, milk\n" * 10)
    before = path.read_bytes()
    with pytest.raises(NotATillflowDatabase) as caught:
        SqliteEventStore(path)
    assert "not an SQLite file" in str(caught.value)
    assert path.read_bytes() == before


def test_an_sqlite_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotATillflowDatabase) as caught:
        SqliteEventStore(path)
    assert "another application" in str(caught.value)
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["customers"]


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SqliteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew) as caught:
        SqliteEventStore(path)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotATillflowDatabase):
        SqliteEventStore(tmp_path)


def test_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        SqliteEventStore(tmp_path / "x.db", durability="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_events_and_checkpoints_survive_a_reopen(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path, durability=durability) as store:  # type: ignore[arg-type]
        store.append("s", [NewEvent("A", {"n": 1})])
        store.commit_batch("p", 0, 0, 1, BatchEffects(views={("v", "k"): b"42"}))
    with SqliteEventStore(path) as store:
        assert [e.payload() for e in store.read_stream("s")] == [{"n": 1}]
        assert store.checkpoint("p", 0) == 1
        assert store.read_view("v", "k") == b"42"
        assert store.append("s", [NewEvent("A")]).positions == {0: 2}


def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SqliteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_runtime_sees_appends_made_through_another_store_object(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    seen: list[int] = []

    def record(event: RecordedEvent, session: Session) -> None:
        seen.append(event.payload()["n"])

    with SqliteEventStore(path) as worker_store, SqliteEventStore(path) as writer_store:
        async with Runtime(worker_store, [Processor("p", record)]) as runtime:
            receipt = writer_store.append("s", [NewEvent("A", {"n": n}) for n in range(5)])
            outcome = await runtime.wait_for(receipt, ["p"], timeout=10)
            assert outcome.reached, outcome
        assert seen == [0, 1, 2, 3, 4]


async def test_barrier_holds_across_store_objects_on_one_file(tmp_path: Path) -> None:
    """Upstream runs on one store object, downstream on another (as two processes would):
    the barrier comes from the durable checkpoint, so downstream never handles an order
    before upstream has recorded its effect."""
    path = tmp_path / "events.db"
    violations: list[int] = []
    handled: list[int] = []

    def upstream(event: RecordedEvent, session: Session) -> None:
        if event.type == "Order":
            session.emit(f"effects-{event.stream}", "Done", {"of": event.position})

    with SqliteEventStore(path) as up_store, SqliteEventStore(path) as down_store:

        def downstream(event: RecordedEvent, session: Session) -> None:
            if event.type == "Order":
                handled.append(event.position)
                if not down_store.find_by_causation(event.id):
                    violations.append(event.position)

        graph = [Processor("up", upstream), Processor("down", downstream, after=("up",))]
        async with (
            Runtime(up_store, graph, run=["up"]) as up_runtime,
            Runtime(down_store, graph, run=["down"]) as down_runtime,
        ):
            for n in range(300):
                await up_runtime.append(f"o-{n}", [NewEvent("Order", {"n": n})])
            await down_runtime.drain(timeout=30)
            [up_stats, down_stats] = down_runtime.statistics()
            assert up_stats.state == "elsewhere"
            assert down_stats.checkpoint == down_stats.head
    assert len(handled) == 300
    assert violations == []


def test_reads_in_a_snapshot_see_one_committed_state_while_writers_go_on(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        store.append("s", [NewEvent("A")])
        store.commit_batch("p", 0, 0, 1, BatchEffects(views={("v", "k"): b"1"}))
        with store.snapshot():
            before = (store.heads(), store.read_view("v", "k"), store.read(0, 0, 5))
            store.append("s", [NewEvent("A")])  # the writer thread commits meanwhile
            store.commit_batch("p", 0, 1, 2, BatchEffects(views={("v", "k"): b"2"}))
            during = (store.heads(), store.read_view("v", "k"), store.read(0, 0, 5))
        after = (store.heads(), store.read_view("v", "k"))
    assert during == before
    assert after == ({0: 2}, b"2")


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, as far as SQLite can tell: a connection in a write
    transaction on the same file."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_an_append_waits_for_the_write_lock_another_writer_holds(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SqliteEventStore(path, busy_timeout=10.0)
    try:
        store.append("s", [NewEvent("Noted", {"n": 0})])
        other = _hold_write_lock(path)
        pending = threading.Thread(
            target=store.append, args=("s", [NewEvent("Noted", {"n": 1})]), daemon=True
        )
        pending.start()
        pending.join(0.2)
        assert pending.is_alive(), "the append went ahead while another writer held the lock"
        assert store.head(0) == 1
        other.execute("COMMIT")
        other.close()
        pending.join(5.0)
        assert not pending.is_alive()
        assert [event.payload() for event in store.read(0, 0)] == [{"n": 0}, {"n": 1}]
        assert store.writer_statistics()["lock_wait_ms"] >= 200
    finally:
        store.close()


def test_a_write_lock_never_released_fails_the_append_after_the_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    store = SqliteEventStore(path, busy_timeout=0.3)
    try:
        other = _hold_write_lock(path)
        with pytest.raises(StoreUnavailable, match="locked") as refused:
            store.append("s", [NewEvent("Noted", {"n": 0})])
        assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
        assert store.writer_statistics()["lock_wait_ms"] >= 300
        other.execute("ROLLBACK")
        other.close()
        store.append("s", [NewEvent("Noted", {"n": 1})])  # the store is still usable
        assert [event.payload() for event in store.read(0, 0)] == [{"n": 1}]
    finally:
        store.close()
