"""Blue/green rebuilds of the report on a real SQLite file: while the shop sells, with the
CLI (dry run against a tampered row, bad input), and two rebuilds racing for the claim."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from tests.integration.rebuild_scenario import check_rebuild_while_selling, rebuild_while_selling
from tests.integration.test_sqlite_locked import held_lock
from tests.parked_checkouts import park_checkout
from tillflow.cli import app
from tillflow.engine import EventStore, SqliteEventStore
from tillflow.engine.dead_letters import parked_keys
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.engine.parking import parked_view
from tillflow.engine.rebuild import Rebuild
from tillflow.engine.versions import (
    STALE_AFTER,
    ClaimHandle,
    LiveVersion,
    RebuildRunning,
    RebuildTakenOver,
    live_version,
    read_claim,
    take_claim,
    versioned,
)
from tillflow.http.watch import ReportWatch
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.inventory.processor import NAME as INVENTORY
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.reporting.projection import NAME, reporting_processor
from tillflow.shop.reporting.rows import ProductRow
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest

runner = CliRunner()


async def test_a_rebuild_while_the_shop_sells_switches_reads_to_a_version_that_matches(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=REGISTRY) as store:
        outcome, observed = await rebuild_while_selling(
            store, lambda: SqliteEventStore(path, registry=REGISTRY)
        )
        check_rebuild_while_selling(store, outcome, observed)


async def _sold(path: Path, checkouts: int) -> None:
    with SqliteEventStore(path, registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.sale.add_product(AddProduct("pear", "Pear", 90))
        async with shop.runtime() as runtime:
            for number in range(checkouts):
                lines = [LineRequest("apple", 1 + number % 3), LineRequest("pear", 1)]
                await shop.sale.checkout_async(Checkout(f"c-{number}", "till-1", lines))
            await runtime.drain(timeout=30)


def _tamper(path: Path, view: str, key: str) -> None:
    """Change one committed row behind the projection's back (as a bug would have)."""
    with sqlite3.connect(path) as conn:
        [raw] = conn.execute(
            "SELECT value FROM views WHERE view = ? AND key = ?", (view, key)
        ).fetchone()
        row = msgspec.json.decode(raw, type=ProductRow)
        row.revenue += 1
        conn.execute(
            "UPDATE views SET value = ? WHERE view = ? AND key = ?",
            (msgspec.json.encode(row), view, key),
        )


def _views(path: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT view, key, value FROM views WHERE view LIKE 'report.%' ORDER BY 1, 2"
        ).fetchall()


def test_a_dry_run_names_a_tampered_live_row_and_switches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 40))
    clean = runner.invoke(app, ["rebuild", "reporting", "--dry-run", "--database", str(path)])
    assert clean.exit_code == 0, clean.output
    assert "every row is the same" in clean.output
    _tamper(path, "report.products", "pear")
    before = _views(path)
    result = runner.invoke(app, ["rebuild", "reporting", "--dry-run", "--database", str(path)])
    assert result.exit_code == 1, result.output
    assert "1 rows differ" in result.output
    assert "pear" in result.output and "revenue" in result.output
    assert "apple" not in result.output
    assert _views(path) == before, "a dry run leaves the live rows and drops its own"
    with SqliteEventStore(path, registry=REGISTRY) as store:
        assert live_version(store, NAME) == 1
        claim = read_claim(store, NAME)
        assert claim is not None and (claim.state, claim.version) == ("dropped", 3)


def test_a_rebuild_then_drop_retired_leaves_only_the_live_version(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 30))
    _tamper(path, "report.products", "apple")
    result = runner.invoke(app, ["rebuild", "reporting", "--database", str(path)])
    assert result.exit_code == 0, result.output
    assert "switched to v2" in result.output
    report = runner.invoke(app, ["report", "--json", "--database", str(path)])
    assert report.exit_code == 0, report.output
    served = msgspec.json.decode(report.output)
    assert served["version"] == 2
    [apple] = [row for row in served["rows"] if row["product_id"] == "apple"]
    assert apple["revenue"] == sum(120 * (1 + n % 3) for n in range(30)), "the tamper is gone"
    status = runner.invoke(app, ["status", "--database", str(path)], env={"COLUMNS": "200"})
    assert status.exit_code == 0, status.output
    assert "reporting (retired)" in status.output and "reporting@v2" in status.output
    assert "@rebuild" not in status.output and "STALLED" not in status.output
    dropped = runner.invoke(
        app, ["rebuild", "reporting", "--drop-retired", "--database", str(path)]
    )
    assert dropped.exit_code == 0, dropped.output
    assert "v1:" in dropped.output
    assert {view for view, _, _ in _views(path)} == {
        "report.products@v2",
        "report.sales@v2",
        "report.totals@v2",
    }


def test_an_unknown_projection_is_refused_with_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 3))
    before = _views(path)
    result = runner.invoke(app, ["rebuild", "inventory", "--database", str(path)])
    assert result.exit_code == 2
    assert "unknown projection 'inventory'" in result.output
    assert "reporting" in result.output
    assert _views(path) == before
    with SqliteEventStore(path, registry=REGISTRY) as store:
        assert read_claim(store, "inventory") is None and read_claim(store, NAME) is None


def test_a_second_rebuild_is_refused_while_one_runs(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 3))
    with SqliteEventStore(path, registry=REGISTRY) as store:
        began = time.time()
        held = take_claim(store, NAME, "host-a:1", now=began)
        before = _views(path)
        refused = runner.invoke(app, ["rebuild", "reporting", "--database", str(path)])
        assert refused.exit_code == 1, refused.output
        assert "running already" in refused.output and "host-a:1" in refused.output
        assert _views(path) == before
        with pytest.raises(RebuildRunning):
            take_claim(store, NAME, "host-b:2", now=began + STALE_AFTER / 2)
        taken = take_claim(store, NAME, "host-b:2", now=began + STALE_AFTER + 1)
        assert taken.claim.version == held.claim.version + 1
        with pytest.raises(RebuildTakenOver):
            held.heartbeat(began + 1)  # the lapsed one is fenced out


def test_of_two_rebuilds_claiming_at_once_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 3))
    stores = [SqliteEventStore(path, registry=REGISTRY) for _ in range(2)]
    try:
        for round_number in range(5):
            start = threading.Barrier(2)
            won: list[ClaimHandle] = []
            refused: list[RebuildRunning] = []
            threads = [
                threading.Thread(target=_claim, args=(own, f"t{n}", start, won, refused))
                for n, own in enumerate(stores)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert (len(won), len(refused)) == (1, 1), round_number
            won[0].release("stopped", time.time())
    finally:
        for own in stores:
            own.close()


def _claim(
    store: SqliteEventStore,
    owner: str,
    start: threading.Barrier,
    won: list[ClaimHandle],
    refused: list[RebuildRunning],
) -> None:
    start.wait(timeout=10)
    try:
        won.append(take_claim(store, NAME, owner, now=time.time()))
    except RebuildRunning as error:
        refused.append(error)


async def test_the_report_watch_follows_the_live_version(tmp_path: Path) -> None:
    """What pushes report updates to live clients (``GET /events``) watches the version
    that is live, so they keep getting updates after a switch."""
    path = tmp_path / "shop.db"
    await _sold(path, 5)
    with SqliteEventStore(path, registry=REGISTRY) as store:
        watch = ReportWatch(store)
        assert await watch.look()
        assert not await watch.look()
        await asyncio.to_thread(Rebuild(store, reporting_processor(), "test").run)
        assert await watch.look(), "the switch is a change, even at the same positions"
        shop = Shop(store)
        async with shop.runtime() as runtime:
            await shop.sale.checkout_async(Checkout("c-late", "till-1", [LineRequest("pear", 1)]))
            await runtime.drain(timeout=30)
        assert await watch.look()
        assert (
            watch.checkpoint == {0: store.checkpoint(versioned(NAME, 2), 0)} == {0: store.head(0)}
        )


def test_a_rebuild_holds_a_checkout_inventory_parked_and_lets_it_go_after_the_switch(
    tmp_path: Path,
) -> None:
    """The new version runs behind Inventory's parked keys as the live one does: it holds a
    parked checkout instead of failing on its missing effects; after the switch the runtime
    holds it in the new version, and handles it there once an operator retries it."""
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 10))
    with SqliteEventStore(path, registry=REGISTRY) as store:
        park_checkout(store, "c-parked", "apple", 2)
        asyncio.run(_drained(store))
        (parked,) = parked_keys(store, [INVENTORY])
    dry = runner.invoke(app, ["rebuild", "reporting", "--dry-run", "--database", str(path)])
    assert dry.exit_code == 0, dry.output
    assert "every row is the same" in dry.output
    switched = runner.invoke(app, ["rebuild", "reporting", "--database", str(path)])
    assert switched.exit_code == 0, switched.output
    with SqliteEventStore(path, registry=REGISTRY) as store:
        asyncio.run(_drained(store))
        (held,) = parked_keys(store, [NAME])  # the live version's: v3 (v2 was the dry run's)
        assert (held.processor, held.letter.key) == (versioned(NAME, 3), parked.letter.key)
        assert Shop(store).report.report().totals.checkouts == 10
    retried = runner.invoke(
        app, ["dlq", "retry", parked.id, "--by", "test", "--database", str(path)]
    )
    assert retried.exit_code == 0, retried.output
    with SqliteEventStore(path, registry=REGISTRY) as store:
        asyncio.run(_drained(store))
        assert parked_keys(store, [INVENTORY, versioned(NAME, 3)]) == []
        report = Shop(store).report.report()
        assert (report.version, report.totals.checkouts) == (3, 11)
        assert any(True for _ in store.view_rows(parked_view(NAME)))  # v1's, never let go
    dropped = runner.invoke(app, ["rebuild", "reporting", "--drop-retired", "-d", str(path)])
    assert dropped.exit_code == 0, dropped.output
    with SqliteEventStore(path, registry=REGISTRY) as store:
        assert not any(True for _ in store.view_rows(parked_view(NAME)))


async def _drained(store: EventStore) -> None:
    async with Shop(store).runtime() as runtime:
        await runtime.drain(timeout=30)


def test_a_rebuild_waits_out_a_locked_file_and_finishes(tmp_path: Path) -> None:
    """Another process takes the file's write lock while the rebuild runs, past its busy
    timeout: its commits are refused (nothing written), it backs off, and it finishes by
    itself once the lock goes."""
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 20))
    started, locked = threading.Event(), threading.Event()

    def hold_at_first_progress(_: object) -> None:
        if not started.is_set():
            started.set()
            locked.wait(timeout=30)

    store = SqliteEventStore(path, registry=REGISTRY, busy_timeout=0.05)
    with store:
        rebuild = Rebuild(
            store, reporting_processor(batch_size=20), "test", on_progress=hold_at_first_progress
        )
        building = threading.Thread(target=rebuild.run)
        building.start()
        assert started.wait(timeout=30)
        with held_lock(path):
            locked.set()
            deadline = time.monotonic() + 30
            while store.writer_statistics()["lock_wait_ms"] < 200:  # refused a few times
                assert time.monotonic() < deadline and building.is_alive()
                time.sleep(0.01)
            assert live_version(store, NAME) == 1
        building.join(timeout=60)
        assert not building.is_alive()
        assert live_version(store, NAME) == 2
        assert Shop(store).report.report().totals.checkouts == 20


def test_a_live_batch_between_the_compare_and_the_switch_defers_the_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live version passes the new one after the rebuild compared them (a checkout
    sold, and taken by Inventory and the live report, right before the first switch):
    the switch is refused (readers would see fewer checkouts than a moment before); the
    rebuild catches up and switches to a version at least where the live one stands."""
    path = tmp_path / "shop.db"
    asyncio.run(_sold(path, 10))
    switch, sold = ClaimHandle.switch, list[str]()

    def selling_first(handle: ClaimHandle, live: LiveVersion, now: float) -> None:
        if not sold:
            sold.append("c-between")
            Shop(handle.store).sale.checkout(
                Checkout("c-between", "till-1", [LineRequest("apple", 1)])
            )
            for processor in (inventory_processor(), reporting_processor()):
                while LaneProcessor(handle.store, processor, 0).step().progressed:
                    pass
        switch(handle, live, now)

    monkeypatch.setattr(ClaimHandle, "switch", selling_first)
    with SqliteEventStore(path, registry=REGISTRY) as store:
        outcome = Rebuild(store, reporting_processor(), "test").run()
        assert sold and outcome.switched
        live = store.checkpoint(NAME, 0)
        assert outcome.positions[0] >= live == store.head(0), (outcome.positions, live)
        totals = store.read_view(versioned("report.totals", 2), "all")
        assert totals is not None and msgspec.json.decode(totals)["checkouts"] == 11
