"""The shop benchmark's placements (case 5) run the whole shop and verify it: with the
tills in a second process and the report in a third (`tillflow worker --run reporting`),
the shop's process runs every other processor. It once ran Inventory alone, and every run
of that placement stalled once the shop had processors besides the two."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.shop import run_shop
from bench.shop_cases import PLACEMENTS


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
async def test_each_placement_runs_the_whole_shop_and_verifies(
    tmp_path: Path, placement: str
) -> None:
    _, separate, apart = PLACEMENTS[placement]
    run = await run_shop(
        tmp_path / "shop.db", 400, separate=separate, reporting_apart=apart, timeout=60.0
    )
    assert (run.status, run.detail) == ("ok", ""), placement
    assert run.checkouts == 400
