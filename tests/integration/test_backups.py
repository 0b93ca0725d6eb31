"""Backups under load: a real shop process rings up checkouts on an SQLite file while its
processors run, and the test takes a backup meanwhile; the backup, restored and caught up
by the processors, is the shop exactly as of the backup's position: the checkouts
acknowledged at or below it, each once, the report equal to their truth. Negative
controls: the same verdict catches a truth off by one checkout, and a naive copy of the
database file taken while the WAL holds acknowledged checkouts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from pathlib import Path

from tests.faults.sqlite import ShopProcess
from tests.faults.verdict import Place, shop_violations
from tests.faults.workload import checkout_id, stock_the_shop
from tillflow.engine import EventStore, SqliteEventStore
from tillflow.service.backups import StoreCopy, backup_store
from tillflow.service.restores import NotABackup, restore_store
from tillflow.shop.assembly import REGISTRY, Shop

CHECKOUTS = 4_000
DEADLINE = 120.0


def _acks(shop: ShopProcess) -> dict[str, Place]:
    places: dict[str, Place] = {}
    for line in shop.lines:
        if line.startswith("ack "):
            _, seq, lane, position = line.split()
            places[checkout_id(int(seq))] = (int(lane), int(position))
    return places


def _wait_for_acks(shop: ShopProcess, count: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while len(_acks(shop)) < count:
        assert time.monotonic() < deadline and not shop.ended, shop.lines[-3:]
        shop.wait_for("never said", 0.05)


def _verdict(restored: Path, acknowledged: dict[str, Place], received: dict[str, int]) -> list[str]:
    """Open the restored store, let the processors catch up from the restored checkpoints,
    and judge it against ``acknowledged`` (every checkout it must hold, and no other)."""

    async def caught_up(store: EventStore) -> None:
        async with Shop(store).runtime() as runtime:
            await runtime.drain(timeout=DEADLINE)

    with SqliteEventStore(restored, registry=REGISTRY) as store:
        asyncio.run(caught_up(store))
        return shop_violations(store, acknowledged, acknowledged.keys(), received)


def _naive_copy(shop: ShopProcess, db: Path, to: Path) -> dict[str, Place]:
    """Copy the database file alone, as ``cp`` would, while a reader keeps the WAL from
    being folded into it and 30 more checkouts are acknowledged; what was acknowledged
    before the copy began."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM checkpoints").fetchone()
        _wait_for_acks(shop, len(_acks(shop)) + 30)
        acknowledged = _acks(shop)
        shutil.copyfile(db, to)
        reader.execute("COMMIT")
    return acknowledged


def _backup_while_writing(db: Path, to: Path) -> tuple[StoreCopy, list[tuple[int, int, int]]]:
    """Back ``db`` up 4 pages per step, the first steps each waiting for the shop to write;
    the copy and its steps: (pages done, pages in all, the live log's head)."""
    steps: list[tuple[int, int, int]] = []
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as live:

        def live_head() -> int:
            return int(live.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])

        def step(done: int, total: int) -> None:
            steps.append((done, total, live_head()))
            if len(steps) <= 5:  # the log moves under the copy between its steps
                deadline = time.monotonic() + DEADLINE
                while live_head() == steps[-1][2]:
                    assert time.monotonic() < deadline, "the shop stopped writing"
                    time.sleep(0.001)  # a poll of the condition, not a wait for time

        return backup_store(str(db), to, pages=4, progress=step), steps


def test_a_backup_under_load_restores_to_the_truth_as_of_its_position(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with SqliteEventStore(db, registry=REGISTRY) as store:
        received = stock_the_shop(Shop(store))
    shop = ShopProcess(db, 0, CHECKOUTS, finish=True)
    try:
        _wait_for_acks(shop, 100)
        acknowledged_before_copy = _naive_copy(shop, db, tmp_path / "naive.db")
        copy, steps = _backup_while_writing(db, tmp_path / "backup.db")
        shop.finish(DEADLINE)
    finally:
        if shop.process.exitcode is None:
            shop.kill()
    assert shop.process.exitcode == 0 and "drained" in shop.lines, shop.lines[-3:]
    acks = _acks(shop)
    assert len(acks) == CHECKOUTS
    [backup_head] = copy.heads.values()
    done = [pages for pages, _, _ in steps]
    assert done == sorted(set(done)) and len(done) > 10, "the copy started over"
    assert steps[-1][2] > steps[0][2] + 5, "writers stood still while the backup copied"
    assert backup_head < max(position for _, position in acks.values())

    restored = tmp_path / "restored.db"
    restore_store(tmp_path / "backup.db", str(restored))
    with SqliteEventStore(restored, registry=REGISTRY) as store:
        assert (store.heads(), store.checkpoints()) == (copy.heads, copy.checkpoints)
    as_of_backup = {cid: place for cid, place in acks.items() if place[1] <= backup_head}
    assert acknowledged_before_copy.keys() <= as_of_backup.keys()
    assert _verdict(restored, as_of_backup, received) == []

    # negative controls: one checkout more, one fewer; the naive copy of the file
    after = min((place, cid) for cid, place in acks.items() if place[1] > backup_head)[1]
    assert _verdict(restored, {**as_of_backup, after: acks[after]}, received)
    last = max((place, cid) for cid, place in as_of_backup.items())[1]
    assert _verdict(restored, {c: p for c, p in as_of_backup.items() if c != last}, received)
    try:
        restore_store(tmp_path / "naive.db", str(tmp_path / "naive-restored.db"))
    except NotABackup:
        return  # torn while a WAL checkpoint wrote it: refused, also caught
    assert _verdict(tmp_path / "naive-restored.db", acknowledged_before_copy, received)
