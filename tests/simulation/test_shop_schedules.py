"""The shop under ≥ 10,000 seeded schedules: commands, processor steps and crashes in random
interleavings, the report's properties checked after every step and the truth at the end.
Every failure prints its seed and trace; ``simulate_shop(design, seed)`` replays it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tillflow.demos.simulation import ShopScenario, explore_shop, simulate_shop
from tillflow.engine import EventStore, Processor, Receipt, RecordedEvent
from tillflow.engine.store import receipt_of
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.inventory import service as inventory_service
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.reporting.projection import NAME, SUBSCRIBED, BarrierReport
from tillflow.testing import SimulationResult, simulate

BARRIER_SEEDS = 10_000
CHUNKS = 16


def _explain(failures: list[SimulationResult]) -> str:
    return "\n\n".join(str(failure) for failure in failures[:3])


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_the_barrier_report_holds_under_every_schedule(chunk: int) -> None:
    size = BARRIER_SEEDS // CHUNKS
    failures = explore_shop("barrier", range(chunk * size, (chunk + 1) * size), stop_after=3)
    assert failures == [], _explain(failures)


@pytest.mark.slow
@pytest.mark.parametrize("half", range(2))
def test_the_chain_design_holds_under_every_schedule(half: int) -> None:
    failures = explore_shop("chain", range(half * 500, half * 500 + 500), stop_after=3)
    assert failures == [], _explain(failures)


@pytest.mark.slow
@pytest.mark.parametrize("half", range(2))
def test_the_eventual_design_converges_with_truthful_freshness(half: int) -> None:
    failures = explore_shop("eventual", range(half * 500, half * 500 + 500), stop_after=3)
    assert failures == [], _explain(failures)


def test_the_eventual_design_tears_checkouts() -> None:
    torn = 0
    for seed in range(50):
        scenario = ShopScenario("eventual")
        assert simulate(scenario, seed, 120, registry=REGISTRY).ok
        torn += scenario.torn
    assert torn > 0, "the eventual design never showed a torn checkout: the trade-off is unshown"


def test_negative_control_the_naive_report_is_caught_within_100_seeds() -> None:
    failures = explore_shop("naive", range(100), stop_after=1)
    assert failures, "the naive report passed 100 schedules: the checks prove nothing"
    [failure] = failures
    assert "stock left says" in str(failure) or "truth is" in str(failure)
    replay = simulate_shop("naive", failure.seed)
    assert replay.trace == failure.trace
    assert replay.violations == failure.violations


def test_negative_control_the_trap_of_copying_stock_out_of_order_is_caught() -> None:
    failures = explore_shop("trap", range(100), stop_after=1)
    assert failures, "the trap (no catch-up of a product's stream) went unnoticed"


def test_a_run_really_exercises_the_shop() -> None:
    """Guard against a vacuous pass: the runs do sell, oversell, crash and catch up."""
    result = simulate_shop("barrier", 7, steps=300)
    trace = "\n".join(result.trace)
    assert result.ok, str(result)
    assert result.crashes > 0
    assert "checkout" in trace and "receive" in trace and "count" in trace
    assert "return 1" in trace
    assert "handled" in trace


def test_runs_resize_tax_rates_and_move_products_between_them() -> None:
    """Guard against a vacuous pass of the VAT checks: rates are redefined and products
    moved (to a rate defined mid-run too), and those runs hold."""
    changes = []
    for seed in range(60):
        result = simulate_shop("barrier", seed)
        assert result.ok, str(result)
        changes += [line for line in result.trace if "command: rate " in line]
        changes += [line for line in result.trace if "command: tax " in line]
    assert any("command: rate " in line for line in changes)
    assert any("command: tax " in line for line in changes)


class _ReportBlindToResolutions(ShopScenario):
    """The shop's report without ``ShortfallResolved`` among its types: a delivery's or
    count's row then stays as of the change, not of the resolution appended with it."""

    def processors(self, store: EventStore) -> list[Processor]:
        report = Processor(
            NAME,
            BarrierReport(),
            types=SUBSCRIBED - {"ShortfallResolved"},
            after=("inventory",),
            batch_size=3,
        )
        return [inventory_processor(batch_size=2), report]


def test_negative_control_a_row_left_behind_its_waited_for_receipt_is_caught() -> None:
    for seed in range(200):
        result = simulate(_ReportBlindToResolutions(), seed, 120, registry=REGISTRY)
        if not result.ok:
            assert "its row is as of version" in str(result), str(result)
            return
    pytest.fail("a report whose as-of lags a waited-for receipt passed 200 schedules")


def test_negative_control_a_retry_answering_another_receipt_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def first_event_only(recorded: Sequence[RecordedEvent]) -> Receipt:
        return receipt_of(recorded[:1])

    monkeypatch.setattr(inventory_service, "receipt_of", first_event_only)
    failures = explore_shop("barrier", range(200), stop_after=1)
    assert failures, "a retry answering only its first event's receipt passed 200 schedules"
    assert "retry of" in str(failures[0])
