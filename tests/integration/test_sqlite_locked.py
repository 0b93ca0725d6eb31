"""The SQLite analogue of a database going away: another process holds the file's write
lock longer than the store's busy timeout. A write then raises :class:`StoreUnavailable`
(HTTP 503), never a raw driver error; processors wait it out as ``degraded`` and resume
when the lock is let go, every event handled once."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tillflow.engine import (
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    SqliteEventStore,
    StoreUnavailable,
)
from tillflow.engine.outage import OutageBackoff

HOLD = (
    "import sqlite3, sys; conn = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "conn.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.readline()"
)
"""A process that takes the write lock and keeps it until it is killed."""


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_file_locked_by_another_process_is_waited_out(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    gate = threading.Event()
    gate.set()
    handling = threading.Event()

    def count(event: RecordedEvent, session: Session) -> None:
        handling.set()
        gate.wait(10)  # a batch in hand when the file gets locked
        session.put("counts", event.type, (session.get("counts", event.type) or 0) + 1)

    with SqliteEventStore(path, busy_timeout=0.2) as store:
        outage = OutageBackoff(first=0.01, most=0.1)
        async with Runtime(store, [Processor("p", count)], outage=outage) as runtime:
            await runtime.append("a", [NewEvent("A")] * 2)
            await runtime.drain(timeout=10)
            gate.clear()
            handling.clear()
            await runtime.append("a", [NewEvent("A")])
            await eventually(handling.is_set)
            with held_lock(path):
                gate.set()  # the batch now commits into the lock
                await eventually(lambda: runtime.health.degraded)
                assert store.checkpoint("p", 0) == 2  # unmoved while locked
                with pytest.raises(StoreUnavailable):
                    await runtime.append("a", [NewEvent("A")])  # nothing written
                await eventually(lambda: runtime.health.retries >= 3)  # waited, not failed
            await runtime.drain(timeout=10)
            await eventually(lambda: not runtime.health.degraded)
            [lane] = runtime.lanes["p"]
            assert lane.failures == 0 and lane.attempts == 0
        assert store.read_view("counts", "A") == b"3"  # each once; the refused append absent
        assert runtime.health.status().outages == 1


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """Another process holds the file's write lock for the block."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            yield
        finally:
            holder.kill()
