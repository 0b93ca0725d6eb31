"""Till sessions under the deterministic simulator: shift changes (a close with a count, the
next session opened) among checkouts, declines, returns and crashes, on one to three lanes;
after every step the cash-up equals the log folded up to its checkpoint, at the end every Z
report shows the difference its count was made with. A cash-up that forgets the change is
caught."""

from __future__ import annotations

import pytest

from tillflow.demos.simulation import ShopScenario
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.tills.audit import CashUpAudit
from tillflow.testing import simulate


@pytest.mark.parametrize("lanes", [1, 3])
def test_the_cash_up_is_a_consistent_cut_under_many_schedules(lanes: int) -> None:
    closes = 0
    for seed in range(25):
        scenario = ShopScenario("barrier")
        result = simulate(scenario, seed, 200, registry=REGISTRY, lane_count=lanes)
        assert result.ok, str(result)
        closes += len(scenario.shifts.differences)
    assert closes >= 25  # the runs did close sessions with counts


def test_negative_control_a_cash_up_that_forgets_the_change_is_caught() -> None:
    caught = []
    for seed in range(10):
        scenario = ShopScenario("barrier", cash_up="handed")
        result = simulate(scenario, seed, 200, registry=REGISTRY)
        if not result.ok:
            caught.append(str(result))
    assert len(caught) >= 8, caught
    assert any(CashUpAudit().processor in failure for failure in caught)
