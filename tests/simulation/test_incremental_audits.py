"""The audits the simulator runs after every step fold each event once (they follow the log
as the processors' checkpoints move); this checks they say exactly what audits folding the
log from scratch say, step by step, on a sound shop and on shops broken three ways."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import pytest

from tillflow.demos.simulation import CashUpDesign, ShopScenario
from tillflow.engine import EventStore, RecordedEvent, Session
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.reporting import projection
from tillflow.shop.reporting.rows import ProductRow, Totals
from tillflow.shop.reporting.sales import count_sale
from tillflow.testing import SimulationResult, simulate

DIFFER = "the incremental audits said"


class _Compared(ShopScenario):
    """After every step, the scenario's own (incremental) audits and fresh ones agree."""

    def check(self, store: EventStore) -> list[str]:
        kept = [problem for audit in self.audits for problem in audit(store)]
        fresh = ShopScenario(self.design, cash_up=self.cash_up).audits
        scratch = [problem for audit in fresh for problem in audit(store)]
        if kept != scratch:
            return [f"{DIFFER} {kept}, from scratch {scratch}"]
        return kept + self.broken_promises


def _runs(seeds: range, cash_up: CashUpDesign = "shop") -> list[SimulationResult]:
    return [
        simulate(_Compared("barrier", cash_up=cash_up), seed, 150, registry=REGISTRY)
        for seed in seeds
    ]


def test_on_a_sound_shop_they_agree_at_every_step() -> None:
    for result in _runs(range(30)):
        assert result.ok, str(result)


def _later_returns(session: Session, view: str, event: RecordedEvent, before: Totals) -> None:
    """Buckets a return an hour after it happened: every sum still adds up, only the
    quarters are wrong (what the sales audit alone can see)."""
    if event.type == "ItemsReturned":
        data = msgspec.json.decode(event.data)
        data["at"] = (datetime.fromisoformat(data["at"]) + timedelta(hours=1)).isoformat()
        event = msgspec.structs.replace(event, data=msgspec.json.encode(data))
    count_sale(session, view, event, before)


@pytest.mark.parametrize("broken", ["quarters", "cash-up", "rows"])
def test_on_a_broken_shop_they_catch_the_same_thing_at_the_same_step(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cash_up: CashUpDesign = "shop"
    expected = {
        "quarters": "the sales the report passed",
        "cash-up": "shows",
        "rows": "Inventory's",
    }
    if broken == "quarters":
        monkeypatch.setattr(projection, "count_sale", _later_returns)
    elif broken == "cash-up":
        cash_up = "handed"
    else:
        original = projection._apply

        def stale_stock(row: ProductRow, totals: Totals, event: RecordedEvent, count: bool) -> None:
            stock = row.stock_left
            original(row, totals, event, count)
            if event.type == "StockReceived":
                row.stock_left = stock  # the delivery's units never reach the row

        monkeypatch.setattr(projection, "_apply", stale_stock)
    failures = [result for result in _runs(range(30), cash_up) if not result.ok]
    assert failures, f"a shop with broken {broken} passed 30 schedules"
    for failure in failures:
        assert DIFFER not in str(failure), str(failure)
    assert any(expected[broken] in str(failure) for failure in failures), str(failures[0])
