"""Backups and restores refused on bad input, each with a typed error that names the field
and value, and nothing changed: a backup PATH that exists, a PostgreSQL store, a restore
over a store another process has open, over an existing store without --force, from a
corrupt backup, from a newer schema, from a file that is not tillflow's. And what the
commands print when they succeed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.faults.sqlite import ShopProcess
from tests.faults.workload import checkout, stock_the_shop
from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.engine.errors import NotATillflowDatabase, SchemaTooNew
from tillflow.engine.sqlite import SCHEMA_VERSION
from tillflow.service.backups import (
    BackupExists,
    BackupPathRefused,
    BackupUnsupported,
    backup_store,
)
from tillflow.service.restores import (
    NotABackup,
    RestoreTargetExists,
    StoreInUse,
    restore_store,
)
from tillflow.shop.assembly import REGISTRY, Shop


def _shop(path: Path, checkouts: int) -> Path:
    with SqliteEventStore(path, registry=REGISTRY) as store:
        shop = Shop(store)
        stock_the_shop(shop)
        for seq in range(checkouts):
            shop.sale.checkout(checkout(seq))
    return path


def _event_ids(path: Path) -> list[bytes]:
    with SqliteEventStore(path, registry=REGISTRY) as store:
        return [event.id for event in store.read(0, 0)]


def _files(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` by name, with its SHA-256."""
    return {
        file.name: hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(directory.iterdir())
        if file.is_file()
    }


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    (tmp_path / "source").mkdir()
    source = _shop(tmp_path / "source" / "shop.db", 5)
    backup_store(str(source), tmp_path / "backup.db")
    return tmp_path / "backup.db"


def test_a_backup_never_overwrites_a_path_that_exists(tmp_path: Path, backup: Path) -> None:
    (tmp_path / "taken.db").write_bytes(b"someone's file")
    before = _files(tmp_path)
    with pytest.raises(BackupExists, match=r"path='.*taken\.db': it exists"):
        backup_store(str(tmp_path / "source" / "shop.db"), tmp_path / "taken.db")
    assert _files(tmp_path) == before  # no partial file left either


def test_paths_that_cannot_be_written_are_refused(tmp_path: Path, backup: Path) -> None:
    before = _files(tmp_path)
    with pytest.raises(BackupPathRefused, match=r"path='.*nowhere.*': directory"):
        backup_store(str(tmp_path / "source" / "shop.db"), tmp_path / "nowhere" / "b.db")
    with pytest.raises(BackupPathRefused, match=r"database='.*nowhere.*': directory"):
        restore_store(backup, str(tmp_path / "nowhere" / "shop.db"))
    with pytest.raises(BackupUnsupported, match="database='memory'"):
        backup_store("memory", tmp_path / "b.db")
    assert _files(tmp_path) == before


def test_postgresql_is_pointed_to_the_readme(tmp_path: Path) -> None:
    with pytest.raises(BackupUnsupported, match="pg_dump") as refused:
        backup_store("postgresql://shop:secret@localhost/shop", tmp_path / "b.db")
    assert "secret" not in str(refused.value) and "README" in str(refused.value)
    assert not (tmp_path / "b.db").exists()
    result = CliRunner().invoke(app, ["backup", str(tmp_path / "b.db"), "-d", "postgresql://h/s"])
    assert result.exit_code == 1 and "Backing up PostgreSQL" in result.output


def test_a_restore_over_a_store_another_process_has_open_is_refused(
    tmp_path: Path, backup: Path
) -> None:
    (tmp_path / "live").mkdir()
    target = _shop(tmp_path / "live" / "shop.db", 0)
    holder = ShopProcess(target, 0, 20, finish=False)  # rings up 20, then keeps it open
    try:
        assert holder.wait_for("rung up", 60), holder.lines[-3:]
        logged = _event_ids(target)
        with pytest.raises(StoreInUse, match=r"database='.*shop\.db' is open"):
            restore_store(backup, str(target), force=True)
        # its processors still write, so the files change; the store is the one it writes
        assert sorted(path.name for path in target.parent.iterdir()) == [
            "shop.db",
            "shop.db-shm",
            "shop.db-wal",
        ]
        assert _event_ids(target)[: len(logged)] == logged
    finally:
        holder.kill()
    # the control: once the process is gone (its WAL left behind), the same restore works
    # and the stale WAL is not read into the restored store
    copy = restore_store(backup, str(target), force=True)
    with SqliteEventStore(target, registry=REGISTRY) as store:
        assert store.heads() == copy.heads
    with contextlib.closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_store_open_in_this_process_is_in_use_too(tmp_path: Path, backup: Path) -> None:
    with SqliteEventStore(tmp_path / "open.db", registry=REGISTRY) as store:
        store.heads()
        with pytest.raises(StoreInUse):
            restore_store(backup, str(tmp_path / "open.db"), force=True)


def test_an_existing_store_is_replaced_only_with_force(tmp_path: Path, backup: Path) -> None:
    target = _shop(tmp_path / "shop.db", 1)
    before = _files(tmp_path)
    with pytest.raises(RestoreTargetExists, match="--force"):
        restore_store(backup, str(target))
    assert _files(tmp_path) == before
    result = CliRunner().invoke(app, ["restore", str(backup), "-d", str(target)])
    assert result.exit_code == 1 and "exists" in result.output


def _corrupt(backup: Path) -> None:
    """Scribble over the middle of the file: pages of the events table."""
    with backup.open("r+b") as file:
        file.seek(backup.stat().st_size // 2)
        file.write(os.urandom(64) * 64)


def test_a_corrupt_backup_is_refused_before_anything_is_written(
    tmp_path: Path, backup: Path
) -> None:
    target = _shop(tmp_path / "shop.db", 1)
    _corrupt(backup)
    before = _files(tmp_path)
    with pytest.raises(NotABackup, match=r"backup='.*backup\.db': .*nothing restored"):
        restore_store(backup, str(target), force=True)
    assert _files(tmp_path) == before


def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path, backup: Path) -> None:
    with contextlib.closing(sqlite3.connect(backup)) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = _files(tmp_path)
    with pytest.raises(SchemaTooNew) as refused:
        restore_store(backup, str(tmp_path / "new.db"))
    assert refused.value.path == str(backup) and refused.value.found == SCHEMA_VERSION + 1
    assert _files(tmp_path) == before


def test_only_tillflow_files_are_restored_or_replaced(tmp_path: Path, backup: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    (tmp_path / "notes.txt").write_text("not a database")
    before = _files(tmp_path)
    with pytest.raises(NotABackup, match="not a tillflow database"):
        restore_store(tmp_path / "other.db", str(tmp_path / "new.db"))
    with pytest.raises(NotABackup, match="no such file"):
        restore_store(tmp_path / "missing.db", str(tmp_path / "new.db"))
    for target in ("other.db", "notes.txt"):
        with pytest.raises(NotATillflowDatabase, match="not replaced"):
            restore_store(backup, str(tmp_path / target), force=True)
    assert _files(tmp_path) == before


def test_the_commands_say_what_they_copied(tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.db", 3)
    with SqliteEventStore(source, registry=REGISTRY) as store:
        head = store.head(0)
    runner = CliRunner()
    backed_up = runner.invoke(app, ["backup", str(tmp_path / "b.db"), "-d", str(source)])
    assert backed_up.exit_code == 0, backed_up.output
    assert re.search(rf"{head} events, log head {head}, [\d.]+ MB in [\d.]+ s", backed_up.output)
    restored = runner.invoke(app, ["restore", str(tmp_path / "b.db"), "-d", str(source), "--force"])
    assert restored.exit_code == 0, restored.output
    assert f"restored {tmp_path / 'b.db'} to {source}: {head} events" in restored.output
    again = runner.invoke(app, ["backup", str(tmp_path / "b.db"), "-d", str(source)])
    assert again.exit_code == 1 and "it exists" in again.output
