"""The shop under seeded schedules during a rolling upgrade: some tills still run the release
before payments and VAT and record ``CheckedOut`` at schema version 1 (no tenders, no tax).
The simulated store reads them through the same upcasting as every store, so Inventory,
the report, the cash-up and every audit see version 2: cash of the exact total, untaxed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tillflow.demos.simulation import ShopScenario
from tillflow.engine import NO_STREAM, EventStore, NewEvent, id_from_key
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale.commands import Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut, CheckoutLine, checkout_stream
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.tenders import CASH, PaidTender
from tillflow.testing import SimulationResult, simulate

SEEDS = range(100)
OLD_TILLS = 0.4
"""The share of checkouts an old till records."""


@dataclass
class RollingUpgrade(ShopScenario):
    old_checkouts: int = 0

    def _checkout(self, rng: random.Random, store: EventStore, sale: SaleService) -> str:
        if rng.random() >= OLD_TILLS:
            return super()._checkout(rng, store, sale)
        products = sale.catalog().products
        checkout_id, till_id = f"c{self.commands}", f"till-{rng.randint(1, 3)}"
        lines = [
            (products[product_id], rng.randint(1, 3))
            for product_id in rng.sample(sorted(products), rng.randint(1, 3))
        ]
        total = sum(product.price * quantity for product, quantity in lines)
        at = self.clock()
        old_lines = [
            {
                "product_id": product.product_id,
                "name": product.name,
                "quantity": quantity,
                "unit_price": product.price,
                "line_total": product.price * quantity,
            }
            for product, quantity in lines
        ]
        written = {
            "checkout_id": checkout_id,
            "till_id": till_id,
            "at": at,
            "lines": old_lines,
            "total": total,
        }
        receipt = store.append(
            checkout_stream(checkout_id),
            [NewEvent("CheckedOut", written, id=id_from_key("checkout", checkout_id))],
            NO_STREAM,
        )
        [recorded] = store.read_stream(checkout_stream(checkout_id))
        checked_out = recorded.decode(CheckedOut)
        expected = CheckedOut(
            checkout_id,
            till_id,
            at,
            [
                CheckoutLine(
                    product.product_id,
                    product.name,
                    quantity,
                    product.price,
                    product.price * quantity,
                    tax_rate="",
                    basis_points=0,
                    tax=0,
                    net=product.price * quantity,
                )
                for product, quantity in lines
            ],
            total,
            tenders=[PaidTender(CASH, total, handed=total)],
            change=0,
        )
        if (recorded.schema_version, checked_out) != (2, expected):
            self.broken_promises.append(
                f"old checkout {checkout_id} read as v{recorded.schema_version} {checked_out}"
            )
        self.truth.checked_out(checked_out, receipt)
        command = Checkout(
            checkout_id, till_id, [LineRequest(p.product_id, q) for p, q in lines], at=at
        )
        self.checkouts.append((command, checked_out))
        self.old_checkouts += 1
        return f"old till checkout {checkout_id}: total {total}"


def _run(seed: int) -> tuple[SimulationResult, RollingUpgrade]:
    scenario = RollingUpgrade()
    return simulate(scenario, seed, 120, registry=REGISTRY), scenario


def test_checkouts_of_old_tills_read_as_version_2_under_every_schedule() -> None:
    failures, old = [], 0
    for seed in SEEDS:
        result, scenario = _run(seed)
        old += scenario.old_checkouts
        if result.violations:
            failures.append(result)
    assert failures == [], "\n\n".join(str(failure) for failure in failures[:2])
    assert old > 3 * len(SEEDS)  # old tills were busy
