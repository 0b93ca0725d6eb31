"""Receipt numbers: 1, 2, 3 … per till, no gaps and no duplicates — under concurrent tills
on several lanes, retries of the same checkout (racing each other), declined cards (which
take no number), a failed commit of the numbering batch, and a restart of a SQLite shop."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tillflow.engine import (
    EventStore,
    MemoryEventStore,
    Processor,
    RecordedEvent,
    Session,
    SqliteEventStore,
    TillflowError,
)
from tillflow.engine.faults import FaultyStore, SimulatedCommitFailure
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.errors import CardDeclined, CheckoutConflict, ReceiptNotNumbered
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.receipts.lookup import read_receipt
from tillflow.shop.receipts.model import ShopHeader
from tillflow.shop.receipts.numbering import (
    NUMBERS_VIEW,
    TILLS_VIEW,
    Numbered,
    numbers_of,
    receipt_number,
)
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut, checkout_stream
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.tenders import Tender
from tillflow.shop.tills.projection import NAME, tills_processor

TILLS = ("till-1", "till-2", "till-3")


def _stock(shop: Shop) -> None:
    shop.sale.add_product(AddProduct("apple", "Apple", 120))
    shop.sale.add_product(AddProduct("pear", "Pear", 80))


def _checkout(checkout_id: str, till: str, card: str | None = None) -> Checkout:
    tenders = None if card is None else [Tender("card", 120, card)]
    return Checkout(checkout_id, till, [LineRequest("apple", 1)], tenders=tenders)


def _dense(store: EventStore, tills: dict[str, list[str]]) -> dict[str, Numbered]:
    """Every checkout's number, checking each till's are exactly 1..n, one per checkout."""
    numbers = {}
    for till, checkouts in tills.items():
        assert numbers_of(store, till) == list(range(1, len(checkouts) + 1)), till
        for checkout_id in checkouts:
            found = receipt_number(store, checkout_id)
            assert found is not None and found.till_id == till, checkout_id
            numbers[checkout_id] = found
    return numbers


def _ring_up(shop: Shop, command: Checkout) -> str:
    """Ring ``command`` up; ``declined`` when its card was, then settle it in cash (a card
    retry that comes after the cash is a conflict: the same id paid otherwise)."""
    try:
        shop.sale.checkout(command)
        return "sold"
    except CardDeclined:
        shop.sale.checkout(Checkout(command.checkout_id, command.till_id, command.lines))
        return "declined"
    except CheckoutConflict:
        assert command.tenders is not None
        return "settled in cash already"


async def test_numbers_are_dense_per_till_across_lanes_with_racing_retries_and_declines() -> None:
    store = MemoryEventStore(lane_count=4, registry=REGISTRY)
    shop = Shop(store, terminal=SimulatedTerminal(decline_cards=frozenset({"broke"})))
    _stock(shop)
    commands = [
        _checkout(f"c-{till}-{index}", till, "broke" if index % 5 == 0 else None)
        for index in range(40)
        for till in TILLS
    ]
    async with shop.runtime() as runtime:  # numbering runs while the tills ring up
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda command: _ring_up(shop, command), commands * 2))
        await runtime.drain(timeout=60)
    assert outcomes.count("declined") >= len(TILLS) * 8  # the first try of each "broke"
    by_till: dict[str, list[str]] = defaultdict(list)
    for command in commands:
        by_till[command.till_id].append(command.checkout_id)
    numbers = _dense(store, by_till)
    assert len(numbers) == len(commands)  # the retries and the declines took none
    assert numbering_violations(store) == []
    assert all(store.checkpoint(NAME, lane) == store.head(lane) for lane in range(4))


def test_one_lane_numbers_a_tills_sales_in_log_order(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "shop.db", durability="off", registry=REGISTRY) as store:
        shop = Shop(store)
        _stock(shop)
        for index in range(12):
            shop.sale.checkout(_checkout(f"c-{index}", TILLS[index % 2]))
        step = LaneProcessor(store, tills_processor(batch_size=5), 0)
        while step.step().scanned:
            pass
        for till in TILLS[:2]:
            sales = [
                (store.read_stream(checkout_stream(f"c-{index}"))[0].position, f"c-{index}")
                for index in range(12)
                if TILLS[index % 2] == till
            ]
            numbered = [receipt_number(store, checkout_id) for _, checkout_id in sorted(sales)]
            assert [found.number if found else None for found in numbered] == [1, 2, 3, 4, 5, 6]


def test_a_numbering_batch_that_failed_to_commit_is_redone_with_the_same_numbers() -> None:
    inner = MemoryEventStore(registry=REGISTRY)
    shop = Shop(inner)
    _stock(shop)
    for index in range(6):
        shop.sale.checkout(_checkout(f"c-{index}", "till-1"))
    failures = [SimulatedCommitFailure("the store blipped")]

    def blip(processor: str, lane: int, expected: int, new: int) -> None:
        if failures:
            raise failures.pop()

    store = FaultyStore(inner, blip)
    step = LaneProcessor(store, tills_processor(batch_size=4), 0)
    with pytest.raises(SimulatedCommitFailure):
        step.step()
    assert receipt_number(inner, "c-0") is None  # nothing of the failed batch
    while step.step().scanned:
        pass
    assert len(store.commits_attempted) >= 3
    _dense(inner, {"till-1": [f"c-{index}" for index in range(6)]})


async def test_a_restart_keeps_the_numbers_and_goes_on_from_them(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, durability="full", registry=REGISTRY) as store:
        shop = Shop(store)
        _stock(shop)
        for index in range(5):
            shop.sale.checkout(_checkout(f"c-{index}", "till-1"))
        async with shop.runtime() as runtime:
            await runtime.drain(timeout=30)
        before = {f"c-{index}": receipt_number(store, f"c-{index}") for index in range(5)}
    with SqliteEventStore(database, durability="full", registry=REGISTRY) as store:
        shop = Shop(store)
        for index in range(3):  # retried after the restart: recorded once, numbered once
            shop.sale.checkout(_checkout(f"c-{index}", "till-1"))
        for index in range(5, 8):
            shop.sale.checkout(_checkout(f"c-{index}", "till-1"))
        shop.sale.checkout(_checkout("c-other", "till-2"))
        async with shop.runtime() as runtime:
            await runtime.drain(timeout=30)
        numbers = _dense(
            store, {"till-1": [f"c-{index}" for index in range(8)], "till-2": ["c-other"]}
        )
        assert numbering_violations(store) == []
    assert {checkout_id: numbers[checkout_id] for checkout_id in before} == before
    assert numbers["c-7"] == Numbered("till-1", 8) and numbers["c-other"] == Numbered("till-2", 1)


def test_a_refused_checkout_takes_no_number() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    shop = Shop(store)
    _stock(shop)
    shop.sale.checkout(_checkout("c-1", "till-1"))
    with pytest.raises(TillflowError):
        shop.sale.checkout(Checkout("c-2", "till-1", [LineRequest("kiwi", 1)]))
    shop.sale.checkout(_checkout("c-3", "till-1"))
    asyncio.run(_drain(shop))
    _dense(store, {"till-1": ["c-1", "c-3"]})


async def _drain(shop: Shop) -> None:
    async with shop.runtime() as runtime:
        await runtime.drain(timeout=30)


def _broken(kind: str) -> Processor:
    """A numbering processor broken one way (the audit's negative controls)."""

    def handle(event: RecordedEvent, session: Session) -> None:
        sale = event.decode(CheckedOut)
        last: int = session.get(TILLS_VIEW, sale.till_id, int) or 0
        step = 2 if kind == "gap" else 1
        if kind != "duplicate":
            session.put(TILLS_VIEW, sale.till_id, last + step)
        till = "till-x" if kind == "wrong till" else sale.till_id
        if kind != "skip" or sale.checkout_id != "c-2":
            session.put(NUMBERS_VIEW, sale.checkout_id, Numbered(till, last + step))

    return Processor(NAME, handle, types=frozenset({"CheckedOut"}))


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("right", None),
        ("gap", "are not 1..3 (missing [1, 3], given twice [])"),
        ("duplicate", "are not 1..3 (missing [2, 3], given twice [1])"),
        ("wrong till", "numbered at till-x"),
        ("skip", "1 checkout(s) not numbered, e.g. c-2"),
    ],
)
async def test_the_audit_finds_gaps_duplicates_wrong_tills_and_unnumbered_sales(
    kind: str, said: str | None
) -> None:
    store = MemoryEventStore(registry=REGISTRY)
    shop = Shop(store, processors=[tills_processor() if kind == "right" else _broken(kind)])
    _stock(shop)
    for index in range(1, 4):
        shop.sale.checkout(_checkout(f"c-{index}", "till-1"))
    async with shop.runtime() as runtime:
        await runtime.drain(timeout=30)
    found = numbering_violations(store)
    if said is None:
        assert found == []
    else:
        assert any(said in problem for problem in found), found


async def test_a_reader_waits_for_the_number_then_prints_it() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    shop = Shop(store, processors=[tills_processor()])
    _stock(shop)
    shop.sale.checkout(_checkout("c-1", "till-1"))
    async with shop.runtime(run=[]) as waiting:  # runs nothing: numbering is up to the test
        reading = asyncio.create_task(read_receipt(store, waiting, ShopHeader(), "c-1", None, 60))
        await asyncio.sleep(0)  # the reader runs to its first wait: it has found no number
        assert not reading.done()
        numbering = LaneProcessor(store, tills_processor(), 0)
        while numbering.step().scanned:
            pass
        printed = await asyncio.wait_for(reading, 60)
    assert (printed.till_id, printed.number) == ("till-1", 1)


async def test_a_reader_that_waited_in_vain_is_refused_naming_the_checkout() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    shop = Shop(store, processors=[tills_processor()])
    _stock(shop)
    shop.sale.checkout(_checkout("c-1", "till-1"))
    async with shop.runtime(run=[]) as waiting:
        with pytest.raises(ReceiptNotNumbered, match="checkout_id='c-1'"):
            await read_receipt(store, waiting, ShopHeader(), "c-1", None, 0.05)
    with pytest.raises(ReceiptNotNumbered):  # no runtime to wait on
        await read_receipt(store, None, ShopHeader(), "c-1")
