"""Which SQLite errors are a blip and which are loud.

A blip passes by itself: the file's lock held by another process past the busy timeout,
the disk briefly unwritable (full, a write refused, the file read-only for a while), too
little memory. Such an error becomes :class:`StoreUnavailable`: nothing of the failed
transaction was written (SQLite rolls it back whole), and the caller retries with the
same idempotency key. Anything else (a corrupt file, a file of another application, a
bad schema, a broken statement) stays the driver's error: retrying would not help.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from tillflow.engine.errors import StoreUnavailable

TRANSIENT: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""Primary result codes of a fault that passes (the extended codes share their low byte)."""


def blip(error: BaseException) -> sqlite3.Error | None:
    """The transient SQLite error behind ``error``, if any: ``error`` itself or one it
    was raised from or while handling (a ``ROLLBACK TO`` that fails because a disk error
    already rolled the transaction back)."""
    seen: BaseException | None = error
    for _ in range(8):  # a short chain; never a cycle
        if seen is None:
            return None
        if isinstance(seen, sqlite3.Error) and seen.sqlite_errorcode & 0xFF in TRANSIENT:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def unavailable(path: str, error: sqlite3.Error) -> StoreUnavailable:
    """The :class:`StoreUnavailable` for a transient ``error`` on the file at ``path``."""
    name = error.sqlite_errorname or "SQLITE_ERROR"
    return StoreUnavailable(f"{path}: {error} ({name}); retry shortly")
