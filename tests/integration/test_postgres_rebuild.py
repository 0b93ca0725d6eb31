"""A blue/green rebuild of the report on PostgreSQL (8 lanes, a private cluster) while the
shop keeps selling: the scenario of ``test_rebuild``, every lane switched at once."""

from __future__ import annotations

from tests.integration.rebuild_scenario import check_rebuild_while_selling, rebuild_while_selling
from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY

LANES = 8


async def test_a_rebuild_on_postgres_switches_every_lane_to_a_version_that_matches(
    postgres_url: str,
) -> None:
    with PostgresEventStore(postgres_url, LANES, registry=REGISTRY) as store:
        outcome, observed = await rebuild_while_selling(
            store, lambda: PostgresEventStore(postgres_url, LANES, registry=REGISTRY), backlog=150
        )
        assert set(outcome.positions) == set(range(LANES))
        check_rebuild_while_selling(store, outcome, observed)
