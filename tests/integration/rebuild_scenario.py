"""A blue/green rebuild of the report while the shop keeps selling, written once and run on
every backend (SQLite here, PostgreSQL in ``test_postgres_rebuild``).

The shop runs in its runtime; the rebuild runs in a thread through a store object of its
own (as ``tillflow rebuild`` does from another process). Readers read the report all
along: until the switch they must get version 1, consistent, and after it version 2,
never fewer checkouts than a read before. After the switch the runtime carries version 2
on, and once drained it equals the truth; a dry run of it then finds no difference."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tillflow.engine import EventStore, format_id, new_event_id
from tillflow.engine.rebuild import Progress, Rebuild, RebuildOutcome
from tillflow.engine.versions import versioned
from tillflow.shop.assembly import Shop
from tillflow.shop.reporting.audit import ConsistentCutAudit
from tillflow.shop.reporting.projection import NAME, REPORT_VIEWS, reporting_processor
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut, checkout_stream

PRODUCTS = [f"p{n}" for n in range(6)]


@dataclass
class Observed:
    """What the readers saw, in order: (version, checkouts) per read."""

    reads: list[tuple[int, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)


async def sell(shop: Shop, truth: ShopTruth, rng: random.Random, till: str) -> None:
    lines = [LineRequest(rng.choice(PRODUCTS), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
    checkout_id = format_id(new_event_id())
    receipt = await shop.sale.checkout_async(Checkout(checkout_id, till, lines))
    [event] = shop.store.read_stream(checkout_stream(checkout_id), 0, 1)
    truth.checked_out(event.decode(CheckedOut), receipt)


async def rebuild_while_selling(
    store: EventStore, second_store: Callable[[], EventStore], backlog: int = 300
) -> tuple[RebuildOutcome, Observed]:
    """Run the scenario; ``second_store`` opens another store object on the same database
    (the rebuild's)."""
    rng = random.Random(14)
    truth = ShopTruth()
    observed = Observed()
    shop = Shop(store)
    for number, product_id in enumerate(PRODUCTS):
        shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + number))
    live_audit = ConsistentCutAudit(REPORT_VIEWS)
    async with shop.runtime() as runtime:
        for _ in range(backlog):
            await sell(shop, truth, rng, "till-0")
        await runtime.drain(timeout=60)
        with second_store() as rebuild_store:
            rebuild = Rebuild(  # small batches: the switch must wait for the last of them
                rebuild_store,
                reporting_processor(batch_size=200),
                "test",
                on_progress=observed.progress.append,
            )
            building = asyncio.create_task(asyncio.to_thread(rebuild.run))

            async def till(number: int) -> None:
                while not building.done():
                    await sell(shop, truth, rng, f"till-{number}")

            async def reader() -> None:
                deadline = asyncio.get_running_loop().time() + 60
                while not building.done() or observed.reads[-1][0] == 1:  # and just after
                    report = shop.report.report()
                    observed.reads.append((report.version, report.totals.checkouts))
                    if report.version == 1:
                        observed.problems.extend(live_audit(store))
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.001)

            await asyncio.gather(till(1), till(2), reader())
            outcome = await building
        for _ in range(20):  # the runtime carries the new version on
            await sell(shop, truth, rng, "till-1")
            report = shop.report.report()
            observed.reads.append((report.version, report.totals.checkouts))
        await runtime.drain(timeout=60)
    report = shop.report.report()
    observed.reads.append((report.version, report.totals.checkouts))
    observed.problems.extend(truth.violations(report.rows, report.totals))
    observed.problems.extend(ConsistentCutAudit(REPORT_VIEWS.at(outcome.version))(store))
    assert report.totals.checkouts == truth.checkouts
    return outcome, observed


def check_rebuild_while_selling(
    store: EventStore, outcome: RebuildOutcome, observed: Observed
) -> None:
    """The guarantees, shared by the backends' tests."""
    assert observed.problems == [], observed.problems[:5]
    assert outcome.switched and (outcome.previous, outcome.version) == (1, 2)
    behind = {
        lane: at for lane, at in outcome.live_positions.items() if at > outcome.positions[lane]
    }
    assert not behind, f"switched while the new version was behind the live one on {behind}"
    versions = [version for version, _ in observed.reads]
    assert versions[0] == 1, "reads during the rebuild come from the old version"
    assert versions[-1] == 2, "after the switch the new version serves"
    assert versions == sorted(versions), "a switch happens once, never back"
    checkouts = [count for _, count in observed.reads]
    assert checkouts == sorted(checkouts), "no read shows fewer checkouts than one before"
    carried = sum(store.checkpoint(versioned(NAME, 2), lane) for lane in range(store.lane_count))
    assert carried > sum(outcome.positions.values()), "the runtime carried v2 on"
    done = [step.done for step in observed.progress]
    assert done and done == sorted(done) and observed.progress[-1].total >= done[-1]
    again = Rebuild(store, reporting_processor(), "test", dry_run=True).run()
    assert again.differences == [], again.differences
    assert again.version == 3
