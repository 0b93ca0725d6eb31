"""Till sessions on PostgreSQL (16 lanes, a private cluster): tills open, ring up sales paid
in cash with change and by card while the processors run, returns are refunded, and each
till is closed once the cash-up has passed every sale (what ``POST /tills/{id}/close``
waits for): every Z report holds all of its session's sales, none late, and the cash-up
equals the log folded on its own — the rows live in PostgreSQL's views as the report's do."""

from __future__ import annotations

import asyncio

from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.tenders import CARD, CASH, Tender
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill
from tillflow.shop.tills.audit import CashUpAudit, fold_log

TILLS = 4
SALES = 30


async def test_z_reports_on_sixteen_lanes_hold_every_sale_and_match_the_log(
    postgres_url: str,
) -> None:
    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        assert store.lane_count == 16
        shop = Shop(store)
        shop.sale.add_product(AddProduct("tea", "Tea", 350))
        tills = [f"till-{number}" for number in range(1, TILLS + 1)]
        for till in tills:
            shop.sale.tills.open(OpenTill(till, 10_000, "am"))
        async with shop.runtime() as runtime:

            async def ring(till: str) -> None:
                for number in range(SALES):
                    pay = (
                        [Tender(CASH, 1000)]  # 3.50 kept, 6.50 change
                        if number % 2
                        else [Tender(CARD, 350, f"tok-{till}")]
                    )
                    command = Checkout(f"{till}-{number}", till, [LineRequest("tea", 1)])
                    await shop.sale.checkout_async(
                        Checkout(command.checkout_id, till, command.lines, tenders=pay)
                    )

            await asyncio.gather(*(ring(till) for till in tills))
            for till in tills:  # a cash sale and a card sale brought back
                for number in (0, 1):
                    await asyncio.to_thread(
                        shop.sale.return_items,
                        ReturnItems(
                            f"r-{till}-{number}", f"{till}-{number}", [LineRequest("tea", 1)]
                        ),
                    )
            reached = await shop.tills.caught_up(runtime, timeout=60)
            assert reached.status == "reached"
            truth = fold_log(store)
            for till in tills:
                counted = truth.expected_cash(till, "am")
                shop.sale.tills.close(CloseTill(till, counted, "am"))
            await runtime.drain(timeout=60)
        assert CashUpAudit()(store) == []
        for till in tills:
            z = shop.tills.z_report(till, "am").session
            assert z is not None and z.late.sales == 0
            assert (z.takings.sales, z.takings.returns) == (SALES, 2)
            assert (z.takings.cash, z.takings.card) == (350 * 15, 350 * 15)
            assert z.takings.change == 650 * 15
            assert (z.takings.cash_refunds, z.takings.card_refunds) == (350, 350)
            assert z.expected_cash == 10_000 + 350 * 15 - 350
            assert z.difference == 0
