"""Restoring an SQLite store from a backup: ``tillflow restore BACKUP``.

::

    BACKUP ──checked (read only)──► copied beside the target ──► opened as a store
        ──target's exclusive lock taken (refused if anyone has it open)──► renamed over it

The backup is checked before anything is written: an SQLite file of tillflow's, a schema
this version reads (a newer one is refused as the store refuses it), SQLite's integrity
check. The target is replaced only with ``force``, only if it is a tillflow store (or
empty), and only while no other connection has it open: SQLite's own lock says so, so a
``tillflow serve``, worker or report anywhere on the machine refuses the restore. The
rename is atomic: the target is the old store or the restored one, never a mix.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tillflow.engine.errors import NotATillflowDatabase, SchemaTooNew
from tillflow.engine.sqlite import APPLICATION_ID, SCHEMA_VERSION
from tillflow.service.backups import (
    PAGES_PER_STEP,
    BackupExists,
    BackupPathRefused,
    BackupRefused,
    Progress,
    StoreCopy,
    pages_copied,
    put_in_place,
    read_positions,
    sidecars,
    sqlite_file,
    staged_beside,
)

_PROBLEMS_SHOWN: Final = 3


class NotABackup(BackupRefused):
    """A backup that cannot be restored: missing, not SQLite, not tillflow's, corrupt."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"backup={path!r}: {reason}; nothing restored")


class RestoreTargetExists(BackupRefused):
    """A target store that exists, restored over without ``force``."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"database={path!r} exists: --force replaces it with the backup; nothing restored"
        )


class StoreInUse(BackupRefused):
    """A target store another connection has open (``serve``, a worker, ...)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"database={path!r} is open in another process (tillflow serve, a worker?): "
            "stop it first; nothing restored"
        )


def restore_store(
    backup: str | Path,
    database: str,
    *,
    force: bool = False,
    pages: int = PAGES_PER_STEP,
    progress: Progress | None = None,
) -> StoreCopy:
    """Make the backup file ``backup`` the SQLite store ``database``. Blocks until done.

    Raises :class:`BackupUnsupported` for a database that is no SQLite file,
    :class:`RestoreTargetExists` for an existing one without ``force``,
    :class:`NotABackup` for a backup that is missing or fails its checks,
    :class:`SchemaTooNew` for a backup of a newer tillflow, :class:`StoreInUse` if another
    connection has the target open, :class:`NotATillflowDatabase` for a target that is
    not a tillflow store and :class:`BackupPathRefused` for a directory that is missing or
    cannot take the copy; on each of them nothing is changed."""
    source, target = Path(backup), sqlite_file(database)
    if not source.is_file():
        raise NotABackup(str(source), "no such file")
    replace = target.exists()
    if replace and not force:
        raise RestoreTargetExists(str(target))
    if replace and source.samefile(target):
        raise NotABackup(str(source), "it is the target store itself")
    if not target.parent.is_dir():
        raise BackupPathRefused(
            str(target), f"directory {str(target.parent)!r} does not exist", "database"
        )
    started = time.monotonic()
    with staged_beside(target, "restoring") as staged:
        _copy_checked(source, staged, pages, progress)  # NotABackup, SchemaTooNew
        heads, checkpoints = read_positions(staged)  # opened as a store: a WAL file
        try:
            with _held_exclusively(target) if replace else contextlib.nullcontext():
                put_in_place(staged, target, replace=replace)
        except BackupExists:  # created meanwhile
            raise RestoreTargetExists(str(target)) from None
    return StoreCopy(
        str(target), heads, checkpoints, target.stat().st_size, time.monotonic() - started
    )


def _copy_checked(source: Path, staged: Path, pages: int, progress: Progress | None) -> None:
    """Check ``source`` read-only, then copy it to ``staged`` with SQLite's backup API."""
    try:
        conn = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise NotABackup(str(source), str(error)) from error
    try:
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if application_id != APPLICATION_ID:
                raise NotABackup(str(source), f"not a tillflow database ({application_id=:#x})")
            if found > SCHEMA_VERSION:
                raise SchemaTooNew(str(source), found, SCHEMA_VERSION)
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            raise NotABackup(str(source), str(error)) from error
        if problems != ["ok"]:
            shown = "; ".join(problems[:_PROBLEMS_SHOWN])
            raise NotABackup(
                str(source), f"SQLite's integrity check found {len(problems)} problem(s): {shown}"
            )
        copy = sqlite3.connect(staged, isolation_level=None)
        try:
            conn.backup(copy, pages=pages, progress=pages_copied(progress))
        except sqlite3.Error as error:  # a full disk, ...
            raise BackupPathRefused(
                str(staged.parent), f"the copy failed ({error})", "database directory"
            ) from error
        finally:
            copy.close()
    finally:
        conn.close()


@contextlib.contextmanager
def _held_exclusively(path: Path) -> Iterator[None]:
    """Hold the store ``path``'s exclusive lock, its WAL folded in and removed, so that it
    can be replaced. :class:`StoreInUse` if another connection has it open (in WAL mode
    each holds a shared lock as long as it is open); :class:`NotATillflowDatabase` if it is
    some other file."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]  # locks
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if application_id != APPLICATION_ID and tables:
                raise NotATillflowDatabase(
                    str(path), f"application_id {application_id:#x}; not replaced"
                )
            conn.execute("PRAGMA journal_mode=DELETE")  # the WAL folded in and removed
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StoreInUse(str(path)) from error
            raise NotATillflowDatabase(str(path), f"{error}; not replaced") from error
        except sqlite3.DatabaseError as error:
            raise NotATillflowDatabase(str(path), f"{error}; not replaced") from error
        for sidecar in sidecars(path):
            sidecar.unlink(missing_ok=True)  # stale: never to be read with the new file
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()
