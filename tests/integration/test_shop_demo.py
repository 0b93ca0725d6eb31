"""The shop demo's workload without a terminal: it verifies, it oversells, and its
verification is not vacuous (a truth that differs from what happened is caught)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tillflow.demos import shop as shop_demo
from tillflow.demos.cash_up import SESSION, SHORT
from tillflow.demos.paying import pay
from tillflow.demos.shop import CATALOG, Counters, ShopDemo, ShopDemoSettings, Snapshot
from tillflow.engine import SqliteEventStore
from tillflow.engine.store import BatchEffects
from tillflow.shop.assembly import REGISTRY, shop_processors
from tillflow.shop.receipts.numbering import NUMBERS_VIEW, Numbered
from tillflow.shop.tills.queries import TillReader
from tillflow.shop.tills.rows import SESSIONS_VIEW, session_key


async def test_the_demo_matches_the_truth_with_oversells_deliveries_and_returns(
    tmp_path: Path,
) -> None:
    snapshots: list[Snapshot] = []
    with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as store:
        demo = ShopDemo(store, ShopDemoSettings(duration=1.5, tills=3, rate=400, seed=7))
        verdict = await demo.run(snapshots.append)
        assert verdict.matches, verdict.problems
        assert verdict.products == len(CATALOG)
        assert verdict.counters.checkouts > 300
        assert verdict.counters.deliveries > len(CATALOG)  # the truck came
        assert verdict.counters.returns > 0
        assert verdict.counters.refusals == 0, verdict.refusals
        assert verdict.units_oversold > 0
        assert verdict.open_shortfall > 0
        payments = verdict.payments  # paid in cash, by card and split; declines, both ways
        assert min(payments.cash, payments.card, payments.split) > 0, payments
        assert min(payments.settled_in_cash, payments.walked_away) > 0, payments
        assert payments.by_card == demo.terminal.charged > 0
        assert set(verdict.short_products) >= {
            item.name for item in CATALOG if item.scarce and item.popularity >= 1
        }
        # the live view saw the report move, with every row consistent when read
        assert [s.phase for s in snapshots][-1] == "done"
        assert snapshots[-1].report.totals.checkouts == verdict.counters.checkouts
        assert snapshots[-1].identity_checks > 0
        assert snapshots[-1].identity_breaks == 0
        assert {lane.processor for lane in snapshots[-1].statistics} == {
            processor.name for processor in shop_processors()
        }

        # negative control: a truth that differs by one delivered unit is a mismatch
        demo.truth.received("milk", 1)
        found = demo.verify(verdict.elapsed, verdict.drain_seconds).problems
        assert any(problem.startswith("milk: received") for problem in found), found

        # negative control: a card charged twice (the terminal charged more than the tenders)
        demo.payments.by_card -= 1
        found = demo.verify(verdict.elapsed, verdict.drain_seconds).problems
        assert any(problem.startswith("the terminal charged") for problem in found), found

        # negative control: a receipt number given twice at a till (to no checkout)
        tampered = BatchEffects(
            views={(NUMBERS_VIEW, "ghost"): msgspec.json.encode(Numbered("till-1", 1))}
        )
        store.commit_batch("tamper", 0, 0, 0, tampered)
        found = demo.verify(verdict.elapsed, verdict.drain_seconds).problems
        assert any("receipt 1 of till-1: no ghost" in problem for problem in found), found

        # the tills were cashed up: till-1's drawer counted 0.50 short, the others exact
        z_reports = [(z.till_id, z.difference, z.late.sales) for z in verdict.z_reports]
        assert z_reports == [("till-1", -SHORT, 0), ("till-2", 0, 0), ("till-3", 0, 0)]
        assert all(min(z.takings.cash, z.takings.card) > 0 for z in verdict.z_reports)

        # negative control: a Z report a cent richer in cash than the log says
        richer = TillReader(store).session("till-2", SESSION)
        assert richer is not None
        richer.takings.cash += 1
        key = (SESSIONS_VIEW, session_key("till-2", SESSION))
        store.commit_batch(
            "tamper", 0, 0, 0, BatchEffects(views={key: msgspec.json.encode(richer)})
        )
        found = demo.verify(verdict.elapsed, verdict.drain_seconds).problems
        assert any("till till-2 session day-1 shows" in problem for problem in found), found
        assert any(problem.startswith("till-2: the Z report expects") for problem in found)


def test_settings_name_the_option_that_is_wrong() -> None:
    assert ShopDemoSettings().problems() == []
    assert ShopDemoSettings(tills=0).problems()[0].startswith("--tills")
    assert ShopDemoSettings(rate=float("nan")).problems()[0].startswith("--rate")
    assert ShopDemoSettings(duration=0).problems()[0].startswith("--duration")


async def test_a_slow_shop_makes_the_tills_fall_behind_not_ring_less(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open loop: the seed fixes every arrival, so a shop ten times slower than the
    schedule rings up exactly the same checkouts, only later."""
    settings = ShopDemoSettings(duration=0.4, tills=1, rate=300, seed=3)

    async def rung(path: Path) -> Counters:
        with SqliteEventStore(path, registry=REGISTRY) as store:
            verdict = await ShopDemo(store, settings).run()
            assert verdict.matches, verdict.problems
            return verdict.counters

    on_time = await rung(tmp_path / "on-time.db")

    async def slow_pay(*args: Any) -> Any:
        await asyncio.sleep(0.01)  # a till 3 times slower than its schedule asks
        return await pay(*args)

    monkeypatch.setattr(shop_demo, "pay", slow_pay)
    late = await rung(tmp_path / "late.db")
    assert (late.checkouts, late.units) == (on_time.checkouts, on_time.units) != (0, 0)
    assert late.behind_schedule > settings.duration  # the slow run did fall behind
    assert late.selling_seconds > on_time.selling_seconds
