"""Receipt numbers on PostgreSQL (16 lanes, a private cluster): a till's checkouts fall on
many lanes, and two workers — each with its own connections and runtime, no leases — number
them at once while the tills ring up. The till's counter row spans the lanes: a batch that
read it commits only if it is unchanged (``ViewRowChanged`` otherwise, redone), so each
till's numbers are still exactly 1..n. And a store the ``receipts`` processor of earlier
versions numbered, each lane to another position, handed over to the cash-up by two workers
at once."""

from __future__ import annotations

import asyncio

from tests.earlier_versions import old_cash_up, old_receipts, run_to
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.retiring import is_retired
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.receipts.handover import RETIRED
from tillflow.shop.receipts.numbering import numbers_of, receipt_number
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.tills.projection import NAME, tills_processor

TILLS = 3
CHECKOUTS_PER_TILL = 60


async def test_two_workers_number_each_tills_checkouts_densely(postgres_url: str) -> None:
    with (
        PostgresEventStore(postgres_url, registry=REGISTRY) as store,
        PostgresEventStore(postgres_url, registry=REGISTRY) as second,
    ):
        assert store.lane_count == 16
        shop = Shop(store, processors=[tills_processor(batch_size=4)])
        other = Shop(second, processors=[tills_processor(batch_size=4)])
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


async def test_two_workers_hand_numbering_over_from_the_old_processor(postgres_url: str) -> None:
    with (
        PostgresEventStore(postgres_url, registry=REGISTRY) as store,
        PostgresEventStore(postgres_url, registry=REGISTRY) as second,
    ):
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        ids = [f"c-{index}" for index in range(120)]
        for index, checkout_id in enumerate(ids):
            till = f"till-{index % TILLS}"
            await shop.sale.checkout_async(Checkout(checkout_id, till, [LineRequest("apple", 1)]))
        for lane in range(store.lane_count):  # each lane left somewhere else by the old ones
            head = store.head(lane)
            run_to(store, old_receipts, lane, head * (lane % 4) // 3)
            run_to(store, old_cash_up, lane, head * ((lane // 4) % 4) // 3)
        given = {key: receipt_number(store, key) for key in ids}
        kept = {key: found for key, found in given.items() if found is not None}
        assert 0 < len(kept) < len(ids)
        other = Shop(second)
        async with shop.runtime() as runtime, other.runtime() as racing:
            await runtime.drain(timeout=120)
            await racing.drain(timeout=120)
        assert numbering_violations(store) == []
        assert {key: receipt_number(store, key) for key in kept} == kept
        assert all(is_retired(store.checkpoint(RETIRED, lane)) for lane in range(16))
        for index in range(120, 160):  # then an earlier version's cash-up passes these
            till = f"till-{index % TILLS}"
            await shop.sale.checkout_async(Checkout(f"c-{index}", till, [LineRequest("apple", 1)]))
        for lane in range(store.lane_count):
            run_to(store, old_cash_up, lane, store.head(lane))
        assert numbering_violations(store) != []
        async with shop.runtime() as runtime, other.runtime() as racing:  # both take it back
            await runtime.drain(timeout=120)
            await racing.drain(timeout=120)
        assert numbering_violations(store) == []
        assert {key: receipt_number(store, key) for key in kept} == kept
