"""Low-stock alerts under seeded schedules: sales, counts and reorder points (some retried)
interleaved with Inventory's steps and crashes; after each run every product's stream holds
exactly one ``LowStock`` per crossing (``tillflow.shop.inventory.audit``) and the report
agrees. Negative controls: alerting on every sale below the point, never alerting, and
remembering alerts outside the store (lost when a crashed batch is redone) are all caught."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tillflow.demos.simulation import PRODUCTS, ShopScenario, explore_shop, simulate_shop
from tillflow.engine import EventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.inventory import processor as inventory_processor
from tillflow.shop.inventory.events import LowStock, stock_stream
from tillflow.shop.inventory.stock import StockLevel, low_stock
from tillflow.testing import SimulationResult, simulate

SEEDS = range(300)

Rule = Callable[..., LowStock | None]


class _Counting(ShopScenario):
    """The shop's scenario, counting the alerts each run recorded, by what crossed."""

    def __init__(self, alerts: Counter[str]) -> None:
        super().__init__("barrier")
        self.alerts = alerts

    def check_final(self, store: EventStore) -> list[str]:
        for product_id in PRODUCTS:
            for event in store.read_stream(stock_stream(product_id)):
                if event.type == "LowStock":
                    self.alerts[event.decode(LowStock).by] += 1
        return super().check_final(store)


def _first_failure(rule: Rule, monkeypatch: pytest.MonkeyPatch) -> SimulationResult | None:
    monkeypatch.setattr(inventory_processor, "low_stock", rule)
    failures = explore_shop("barrier", SEEDS, stop_after=1)
    return failures[0] if failures else None


def test_one_alert_per_crossing_holds_under_every_schedule_and_is_exercised() -> None:
    alerts: Counter[str] = Counter()
    crashes = 0
    for seed in SEEDS:
        result = simulate(_Counting(alerts), seed, 120, registry=REGISTRY)
        assert result.ok, str(result)
        crashes += result.crashes
    assert crashes > 0
    assert min(alerts[by] for by in ("sale", "count", "reorder_point")) > 0, alerts


def test_negative_control_an_alert_on_every_sale_below_the_point_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def every_time(
        before: StockLevel, after: StockLevel, by: str, checkout_id: str | None = None
    ) -> LowStock | None:
        never_low = StockLevel(before.product_id, before.version, before.stock)
        return low_stock(never_low, after, by, checkout_id)

    failure = _first_failure(every_time, monkeypatch)
    assert failure is not None, "repeated alerts in one low spell passed 300 schedules"
    assert "a second LowStock in the low spell" in str(failure)


def test_negative_control_a_sale_that_never_alerts_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_: object) -> LowStock | None:
        return None

    failure = _first_failure(never, monkeypatch)
    assert failure is not None, "a sale crossing without an alert passed 300 schedules"
    assert "crossed with no LowStock" in str(failure)


def test_negative_control_alerts_remembered_outside_the_store_are_lost_in_a_redo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A processor that notes "alerted" in memory rather than deciding from the stream:
    when its batch crashes before the commit, the redo skips the alert that was lost."""
    alerted: set[tuple[str, str | None]] = set()

    def remembered(
        before: StockLevel, after: StockLevel, by: str, checkout_id: str | None = None
    ) -> LowStock | None:
        alert = low_stock(before, after, by, checkout_id)
        if alert is None or (after.product_id, checkout_id) in alerted:
            return None
        alerted.add((after.product_id, checkout_id))
        return alert

    monkeypatch.setattr(inventory_processor, "low_stock", remembered)
    for seed in SEEDS:
        alerted.clear()  # a fresh processor's memory per run
        result = simulate_shop("barrier", seed)
        if not result.ok:
            assert "crossed with no LowStock" in str(result), str(result)
            return
    pytest.fail("alerts lost in a redo passed 300 schedules")
