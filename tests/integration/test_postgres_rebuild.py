"""A blue/green rebuild of the report on PostgreSQL (a private cluster) while the shop keeps
selling: the scenario of ``test_rebuild`` on 8 lanes, every lane switched at once; and with
the lanes held by leased `tillflow worker` processes, which carry the new version on."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.rebuild_scenario import check_rebuild_while_selling, rebuild_while_selling
from tests.integration.test_postgres_workers import (
    PRODUCTS,
    Till,
    Workers,
    eventually,
    workers,
)
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.versions import versioned
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.reporting.projection import NAME
from tillflow.shop.sale.commands import AddProduct

LANES = 8
WORKER_LANES = 4
__all__ = ["workers"]  # the fixture


async def test_a_rebuild_on_postgres_switches_every_lane_to_a_version_that_matches(
    postgres_url: str,
) -> None:
    with PostgresEventStore(postgres_url, LANES, registry=REGISTRY) as store:
        outcome, observed = await rebuild_while_selling(
            store, lambda: PostgresEventStore(postgres_url, LANES, registry=REGISTRY), backlog=150
        )
        assert set(outcome.positions) == set(range(LANES))
        check_rebuild_while_selling(store, outcome, observed)


def test_leased_workers_carry_the_rebuilt_version_on(postgres_url: str, workers: Workers) -> None:
    """Two `tillflow worker` processes hold the lanes by leases; `tillflow rebuild` runs as a
    process of its own. After the switch the workers commit the new version under their
    leases (the fence checks the group's lease whatever version commits)."""
    store = PostgresEventStore(postgres_url, WORKER_LANES, registry=REGISTRY)
    with store:
        shop = Shop(store)
        for number, product_id in enumerate(PRODUCTS):
            shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + number))
        till = Till(store)
        workers.start()
        workers.start()
        till.checkouts(40)
        rebuilt = subprocess.run(
            [sys.executable, "-m", "tillflow", "rebuild", "reporting", "--database", postgres_url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            check=False,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "switched to v2" in rebuilt.stdout
        till.checkouts(40)
        before = {lane: store.checkpoint(versioned(NAME, 2), lane) for lane in range(WORKER_LANES)}
        eventually(lambda: shop.report.report().totals.checkouts == 80, timeout=60)
        report = shop.report.report()
        assert report.version == 2
        assert till.truth.violations(report.rows, report.totals) == []
        after = {lane: store.checkpoint(versioned(NAME, 2), lane) for lane in range(WORKER_LANES)}
        assert sum(after.values()) > sum(before.values()), "the workers moved v2 on"
        assert all(process.poll() is None for process in workers.processes)
