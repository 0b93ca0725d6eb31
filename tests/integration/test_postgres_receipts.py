"""Receipt numbers on PostgreSQL (16 lanes, a private cluster): a till's checkouts fall on
many lanes, and two workers — each with its own connections and runtime, no leases — number
them at once while the tills ring up. The till's counter row spans the lanes: a batch that
read it commits only if it is unchanged (``ViewRowChanged`` otherwise, redone), so each
till's numbers are still exactly 1..n."""

from __future__ import annotations

import asyncio

from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.receipts.numbering import NAME, numbers_of, receipts_processor
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest

TILLS = 3
CHECKOUTS_PER_TILL = 60


async def test_two_workers_number_each_tills_checkouts_densely(postgres_url: str) -> None:
    with (
        PostgresEventStore(postgres_url, registry=REGISTRY) as store,
        PostgresEventStore(postgres_url, registry=REGISTRY) as second,
    ):
        assert store.lane_count == 16
        shop = Shop(store, processors=[receipts_processor(batch_size=4)])
        other = Shop(second, processors=[receipts_processor(batch_size=4)])
        shop.sale.add_product(AddProduct("apple", "Apple", 120))

        async def till(number: int) -> None:
            for index in range(CHECKOUTS_PER_TILL):
                command = Checkout(
                    f"c-{number}-{index}", f"till-{number}", [LineRequest("apple", 1)]
                )
                await shop.sale.checkout_async(command)
                if index % 7 == 0:  # a retry: recorded once, numbered once
                    await shop.sale.checkout_async(command)

        async with shop.runtime() as runtime, other.runtime() as racing:
            await asyncio.gather(*(till(number) for number in range(TILLS)))
            await runtime.drain(timeout=120)
            await racing.drain(timeout=120)
        assert numbering_violations(store) == []
        for number in range(TILLS):
            assert numbers_of(store, f"till-{number}") == list(range(1, CHECKOUTS_PER_TILL + 1))
        assert all(
            store.checkpoint(NAME, lane) == store.head(lane) for lane in range(store.lane_count)
        )
