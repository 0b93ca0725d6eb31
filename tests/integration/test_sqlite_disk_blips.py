"""SQLite blips in one process, with real faults: the disk refusing writes (this process's
file-size limit at 0, as a full disk does), no file descriptor left to open the file with,
and the file's write lock held by another process. A blip is :class:`StoreUnavailable`
with nothing written, never the driver's raw error; a corrupt file or a bad schema stays
loud. The file opens and reads while locked, ``tillflow status`` says ``degraded``, and a
runtime told of a refused request stays degraded until a probe finds the file writable
again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.test_sqlite_locked import eventually, held_lock
from tillflow.cli import app
from tillflow.engine import (
    NewEvent,
    NotATillflowDatabase,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    SqliteEventStore,
    StoreUnavailable,
)
from tillflow.engine.outage import OutageBackoff
from tillflow.engine.sqlite_errors import blip

QUICK = OutageBackoff(first=0.01, most=0.1)


@contextlib.contextmanager
def disk_refusing_writes(pid: int = 0) -> Iterator[None]:
    """Every write to a file of process ``pid`` (0: this one) fails for the block, with
    EFBIG as from a full disk: its file-size limit is 0."""
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, limits[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)


def count(event: RecordedEvent, session: Session) -> None:
    session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)


def test_an_append_meeting_an_unwritable_disk_is_unavailable_and_writes_nothing(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "shop.db") as store:
        store.append("a", [NewEvent("A")])
        with disk_refusing_writes(), pytest.raises(StoreUnavailable, match="disk I/O") as refused:
            store.append("a", [NewEvent("A", {"n": 2})])
        assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
        assert store.stream_version("a") == 1
        store.append("a", [NewEvent("A", {"n": 3})])  # the blip has passed
        assert [event.version for event in store.read_stream("a")] == [1, 2]


async def test_a_processor_batch_meeting_an_unwritable_disk_is_degraded_not_failed(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "shop.db") as store:
        store.append("a", [NewEvent("A")] * 3)
        async with Runtime(store, [Processor("p", count)], outage=QUICK) as runtime:
            with contextlib.ExitStack() as blip_lasts:
                blip_lasts.enter_context(disk_refusing_writes())
                await eventually(lambda: runtime.health.retries >= 3)
                assert runtime.health.degraded and store.checkpoint("p", 0) == 0
                [lane] = runtime.lanes["p"]
                assert lane.failures == 0  # not the handler's fault
            await runtime.drain(timeout=10)
            await eventually(lambda: not runtime.health.degraded)
        assert store.read_view("counts", "A") == b"3"


def test_a_locked_file_opens_and_reads_and_status_says_degraded(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path) as store:
        store.append("a", [NewEvent("A")])
    with held_lock(path):
        with SqliteEventStore(path, busy_timeout=0.2) as store:  # no write lock to open
            assert store.stream_version("a") == 1
            with pytest.raises(StoreUnavailable, match="locked"):
                store.probe_writes()
        shown = CliRunner().invoke(app, ["status", "--database", str(path)])
        assert shown.exit_code == 0, shown.output
        assert "database: degraded" in shown.output and "locked" in shown.output
    shown = CliRunner().invoke(app, ["status", "--database", str(path)])
    assert "database: ok" in shown.output


async def test_a_refused_request_is_degraded_until_a_probe_finds_the_file_writable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, busy_timeout=0.1) as store:
        async with Runtime(store, [Processor("p", count)], outage=QUICK) as runtime:
            with held_lock(path):
                try:
                    await runtime.append("a", [NewEvent("A")])
                except StoreUnavailable as refused:
                    runtime.request_refused(refused)
                await eventually(lambda: runtime.health.degraded)
                await asyncio.sleep(0.3)  # probes meanwhile find it still locked
                assert runtime.health.degraded
            await eventually(lambda: not runtime.health.degraded, timeout=2.0)  # no write
        assert store.head(0) == 0


def test_a_reader_that_cannot_open_the_file_for_now_is_unavailable(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "shop.db") as store:
        store.append("a", [NewEvent("A")])
        outcome: list[BaseException | int] = []

        def read_in_a_new_thread() -> None:  # its first read opens a connection
            try:
                outcome.append(store.head(0))
            except BaseException as error:
                outcome.append(error)

        limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        try:  # no file descriptor left, as in a process that leaks them
            reader = threading.Thread(target=read_in_a_new_thread)
            reader.start()
            reader.join()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        [refused] = outcome
        assert isinstance(refused, StoreUnavailable), refused  # not NotATillflowDatabase
        reader = threading.Thread(target=read_in_a_new_thread)
        reader.start()
        reader.join()
        assert outcome[1] == 1


def test_loud_errors_are_not_blips(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x07" * 4096)
    with pytest.raises(NotATillflowDatabase):
        SqliteEventStore(corrupt)
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as no_table:
        conn.execute("SELECT * FROM events")
    assert blip(no_table.value) is None
    conn = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    with disk_refusing_writes(), pytest.raises(sqlite3.OperationalError) as undone:
        try:
            conn.execute("INSERT INTO t VALUES (1)")  # a disk error rolls it all back...
        except sqlite3.OperationalError:
            conn.execute("ROLLBACK TO job")  # ...so undoing a part finds no savepoint
    assert "no such savepoint" in str(undone.value)
    assert blip(undone.value) is undone.value.__context__  # the disk error behind it


def test_a_write_probe_finds_a_disk_that_refuses_writes_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    """The write lock alone can be taken on a full disk: the probe writes a page too."""
    with SqliteEventStore(tmp_path / "shop.db") as store:
        store.probe_writes()
        with disk_refusing_writes(), pytest.raises(StoreUnavailable, match="disk refuses"):
            store.probe_writes()
        store.probe_writes()
        assert sorted(path.name for path in tmp_path.iterdir()) == [
            "shop.db",
            "shop.db-shm",
            "shop.db-wal",
        ]


class _ReadsRefused(SqliteEventStore):
    """A store whose reads of lane heads and events fail while ``refusing`` is set."""

    refusing = False

    def head(self, lane: int) -> int:
        if self.refusing:
            raise StoreUnavailable("reads refused")
        return super().head(lane)

    def read(self, *args: object, **kwargs: object) -> list[RecordedEvent]:
        if self.refusing:
            raise StoreUnavailable("reads refused")
        return super().read(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_lane_with_nothing_to_do_is_back_only_once_the_disk_takes_writes(
    tmp_path: Path,
) -> None:
    """A lane that met the store unavailable and then steps idle has only shown that reads
    work: while the disk refuses writes the runtime stays degraded (an idle step once said
    the database was back in the middle of a full disk)."""
    store = _ReadsRefused(tmp_path / "shop.db")
    with store:
        async with Runtime(store, [Processor("p", count)], outage=QUICK) as runtime:
            store.refusing = True
            await eventually(lambda: runtime.health.retries >= 2)
            with disk_refusing_writes():
                store.refusing = False
                retries = runtime.health.retries
                await eventually(lambda: runtime.health.retries >= retries + 3)
                assert runtime.health.degraded, "back on an idle step, the disk still full"
            await eventually(lambda: not runtime.health.degraded)
