"""What the shop cases observe besides time: memory, CPU per thread, SQL statements.

CPU time per thread (``/proc``, through psutil) does not depend on how loaded the machine
is, unlike a rate: on a shared machine, the CPU a checkout costs in each thread is the
figure to compare between runs. Statements are counted only when asked for
(:class:`CountingStore`): the trace callback runs Python for every statement.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Final

import psutil

from tillflow.engine import SqliteEventStore

_ROLES: Final = (
    ("tillflow-writer", "writer"),
    ("tillflow:", ""),
    ("MainThread", "event loop"),
    ("asyncio", "to_thread"),
    ("bench-tills", "tills"),
)


@dataclass(frozen=True)
class Memory:
    rss: int
    anonymous: int
    """``rss`` minus file-backed pages (the memory-mapped database, shared libraries)."""


def memory_now() -> Memory:
    info = psutil.Process().memory_info()
    return Memory(info.rss, info.rss - int(getattr(info, "shared", 0)))


def process_tree_cpu() -> float:
    """CPU seconds (user + system) of this process and of every process it started that is
    still running (the tills' process, the report's worker): the whole shop's CPU."""
    process = psutil.Process()
    times = process.cpu_times()
    seconds = times.user + times.system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # it ended between listing and reading
            child_times = child.cpu_times()
            seconds += child_times.user + child_times.system
    return seconds


def role(thread_name: str) -> str:
    """``tillflow:inventory_0`` → ``inventory``, ``tillflow-writer:x.db`` → ``writer``..."""
    name = re.sub(r"_\d+$", "", thread_name)
    for prefix, replacement in _ROLES:
        if name.startswith(prefix):
            return replacement or name.removeprefix(prefix)
    return "other"


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process by thread role, ``all`` included
    (threads that have ended count in ``all`` only)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    process = psutil.Process()
    seconds: dict[str, float] = {}
    for thread in process.threads():
        name = role(names.get(thread.id, "other"))
        seconds[name] = seconds.get(name, 0.0) + thread.user_time + thread.system_time
    times = process.cpu_times()
    seconds["all"] = times.user + times.system
    return seconds


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds between two :func:`thread_cpu` readings; ``ended`` is what threads that
    are gone by ``after`` (or that no role names) spent."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    named = sum(seconds for name, seconds in spent.items() if name != "all")
    spent["ended"] = max(0.0, spent.get("all", 0.0) - named)
    return spent


def classify(sql: str) -> str:
    """A short name for a statement the store runs."""
    words = sql.split(None, 3)
    kind = words[0].upper() if words else "?"
    if kind == "INSERT" and len(words) > 2:
        return f"INSERT {words[2]}"
    if kind != "SELECT":
        return kind
    for marker, name in (
        ("WHERE causation_id", "SELECT by causation"),
        ("ORDER BY version DESC LIMIT 1", "SELECT last event of stream"),
        ("max(position)", "SELECT head"),
        ("ORDER BY position DESC LIMIT 1", "SELECT head"),
        ("FROM checkpoints", "SELECT checkpoint"),
        ("FROM views", "SELECT view row"),
        ("stream IN", "SELECT versions (prefetch)"),
        ("id IN", "SELECT ids (prefetch)"),
        ("WHERE stream = ?", "SELECT stream"),
        ("WHERE position >", "SELECT log range"),
        ("WHERE id = ?", "SELECT by id"),
    ):
        if marker in sql:
            return name
    return "SELECT other"


class CountingStore(SqliteEventStore):
    """A :class:`SqliteEventStore` counting the statements each thread role runs (every
    execution, so an ``executemany`` of n rows counts n). For profiling only."""

    statements: Counter[tuple[str, str]]

    def __init__(self, *arguments: object, **keywords: object) -> None:
        self.statements = Counter()
        self._count_lock = threading.Lock()
        super().__init__(*arguments, **keywords)  # type: ignore[arg-type]

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.set_trace_callback(self._trace)
        return conn

    def _trace(self, sql: str) -> None:
        key = (role(threading.current_thread().name), classify(sql))
        with self._count_lock:
            self.statements[key] += 1
