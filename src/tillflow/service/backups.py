"""Online backups of an SQLite store: ``tillflow backup PATH``.

::

    store (serving) ──SQLite's backup API, pages per step, one read snapshot──► .PATH.partial-N
                                                           linked into place ──► PATH

The copy is the store as of one read transaction: writers go on meanwhile (WAL) and the
copy is exactly the store at that moment — events, view rows and every processor's
checkpoints together, so processors run on a restore of it resume from those checkpoints
and handle nothing twice. PATH is whole or absent, and never overwritten. The refusals
and the restore: :mod:`tillflow.service.restores`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tillflow.engine import SqliteEventStore, TillflowError
from tillflow.service.bootstrap import describe_database, is_server_url, open_store

PAGES_PER_STEP: Final = 4096
"""Pages copied per step of the backup API (16 MiB of 4 KiB pages): the progress bar's
grain; the snapshot is held across steps, so the step size does not matter to writers."""

Progress = Callable[[int, int], None]
"""Called with (pages copied, pages in all) as a copy goes."""


class BackupRefused(TillflowError):
    """A backup or restore that was not done; the message names the field and value, and
    nothing was written."""


class BackupUnsupported(BackupRefused):
    """``tillflow backup`` of a store that is not an SQLite file."""

    def __init__(self, database: str) -> None:
        self.database = database
        super().__init__(
            f"database={database!r}: tillflow backup and restore copy SQLite files; back up "
            "PostgreSQL with pg_dump or base backups (README: Backing up PostgreSQL)"
        )


class BackupPathRefused(BackupRefused):
    """A file name that cannot be written (its directory is missing, ...); ``field`` names
    the argument that gave it."""

    def __init__(self, path: str, reason: str, field: str = "path") -> None:
        self.path = path
        self.reason = reason
        self.field = field
        super().__init__(f"{field}={path!r}: {reason}; nothing written")


class BackupExists(BackupPathRefused):
    """A backup PATH that exists: a backup never overwrites."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "it exists, and a backup never overwrites: choose a new path")


@dataclass(frozen=True, slots=True)
class StoreCopy:
    """What a backup or a restore copied, as of the copy's snapshot."""

    path: str
    heads: dict[int, int]
    """The log's head per lane."""
    checkpoints: dict[str, dict[int, int]]
    """Per processor and lane, where it resumes."""
    size: int
    """Bytes of the file written."""
    seconds: float

    @property
    def events(self) -> int:
        """Events in the copy: positions are dense from 1, so the heads added up."""
        return sum(self.heads.values())


def backup_store(
    database: str,
    path: str | Path,
    *,
    pages: int = PAGES_PER_STEP,
    progress: Progress | None = None,
) -> StoreCopy:
    """Copy the SQLite store ``database`` to the new file ``path`` while others keep
    writing to it. Blocks until the copy is written and synced. Raises
    :class:`BackupUnsupported` for a store that is not an SQLite file (without connecting
    to it), :class:`BackupExists` if ``path`` exists (also when it appears meanwhile),
    :class:`BackupPathRefused` if it cannot be written, and :func:`open_store`'s errors for
    a database it cannot open (missing, not tillflow's, a newer schema); none of them
    leaves a file behind."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise BackupExists(str(target))
    if not target.parent.is_dir():
        raise BackupPathRefused(str(target), f"directory {str(target.parent)!r} does not exist")
    with _sqlite_store(database) as store:
        try:
            return _copy(store, target, pages, progress)
        except (sqlite3.Error, OSError) as error:  # a full disk, a file system without links
            raise BackupPathRefused(str(target), f"the copy failed ({error})") from error


def sqlite_file(database: str) -> Path:
    """The SQLite file ``database`` names (``sqlite:///`` taken off); without connecting,
    :class:`BackupUnsupported` for a PostgreSQL URL or a memory store."""
    if is_server_url(database) or database == "memory" or database.startswith("memory:"):
        raise BackupUnsupported(describe_database(database))
    return Path(database.removeprefix("sqlite:///"))


@contextlib.contextmanager
def _sqlite_store(database: str) -> Iterator[SqliteEventStore]:
    sqlite_file(database)
    store = open_store(database, create=False)
    try:
        if not isinstance(store, SqliteEventStore):
            raise BackupUnsupported(describe_database(database))
        yield store
    finally:
        store.close()


def _copy(
    store: SqliteEventStore, target: Path, pages: int, progress: Progress | None
) -> StoreCopy:
    started = time.monotonic()
    with staged_beside(target, "partial") as staged:
        copy = sqlite3.connect(staged, isolation_level=None)
        try:
            store.backup_into(copy, pages, pages_copied(progress))
        finally:
            copy.close()
        heads, checkpoints = read_positions(staged)
        with contextlib.closing(sqlite3.connect(staged, isolation_level=None)) as copy:
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        put_in_place(staged, target, replace=False)
    return StoreCopy(
        str(target), heads, checkpoints, target.stat().st_size, time.monotonic() - started
    )


def read_positions(path: Path) -> tuple[dict[int, int], dict[str, dict[int, int]]]:
    """The heads and the processors' checkpoints of the store file ``path``, read as the
    store reads them (which leaves it a WAL file)."""
    with SqliteEventStore(path) as store:
        return store.heads(), store.checkpoints()


def pages_copied(progress: Progress | None) -> Callable[[int, int, int], None] | None:
    """The backup API's ``progress(status, remaining, total)`` as ``progress(done, total)``."""
    if progress is None:
        return None
    report = progress

    def step(status: int, remaining: int, total: int) -> None:
        report(total - remaining, total)

    return step


@contextlib.contextmanager
def staged_beside(target: Path, purpose: str) -> Iterator[Path]:
    """A file name in ``target``'s directory (so a rename into place is atomic), removed
    on the way out unless it was put in place."""
    staged = target.with_name(f".{target.name}.{purpose}-{os.getpid()}")
    try:
        yield staged
    finally:
        for name in (staged, *sidecars(staged)):
            name.unlink(missing_ok=True)


def sidecars(path: Path) -> tuple[Path, ...]:
    """SQLite's files beside a database: its WAL, WAL index and rollback journal."""
    return tuple(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))


def put_in_place(staged: Path, target: Path, *, replace: bool) -> None:
    """Move the synced file ``staged`` to ``target`` atomically: over it if ``replace``,
    else only if ``target`` does not exist (:class:`BackupExists`); then sync the
    directory, so the name survives a crash."""
    with staged.open("rb") as file:
        os.fsync(file.fileno())
    if replace:
        os.replace(staged, target)
    else:
        try:
            os.link(staged, target)  # fails if target exists: never overwrites
        except FileExistsError:
            raise BackupExists(str(target)) from None
        staged.unlink()
    if os.name == "posix":  # elsewhere a directory cannot be opened to sync it
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
