"""Handing receipt numbering over from the ``receipts`` processor of earlier versions to the
cash-up (``tills``), on stores the old processors left in every state: numbering behind the
cash-up, ahead of it, never run, on one lane (a real SQLite file) and on three. After the
upgrade every number already given is kept, each till's numbers are exactly 1..n, and a
worker still running the old processor is refused and numbers nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.earlier_versions import old_cash_up, old_receipts, run_to
from tillflow.cli import app
from tillflow.engine import (
    CheckpointConflict,
    EventStore,
    HandlerFailed,
    MemoryEventStore,
    Processor,
    SqliteEventStore,
)
from tillflow.engine.errors import RetiredProcessor
from tillflow.engine.faults import FaultyStore
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.engine.retiring import RETIRED_AT, is_retired
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.receipts import handover
from tillflow.shop.receipts.audit import numbering_violations
from tillflow.shop.receipts.handover import HANDOVER_VIEW, RETIRED, NotHandedOver
from tillflow.shop.receipts.numbering import Numbered, receipt_number
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.tills.projection import NAME, SUBSCRIBED, CashUp

TILLS = ("till-1", "till-2")


def opened(store: EventStore, checkouts: int) -> Shop:
    """A shop over ``store`` selling apples, with ``checkouts`` rung up."""
    shop = Shop(store)
    shop.sale.add_product(AddProduct("apple", "Apple", 120))
    ring_up(shop, 0, checkouts)
    return shop


def ring_up(shop: Shop, first: int, count: int) -> list[str]:
    ids = [f"c-{index}" for index in range(first, first + count)]
    for index, checkout_id in zip(range(first, first + count), ids, strict=True):
        till = TILLS[index % len(TILLS)]
        shop.sale.checkout(Checkout(checkout_id, till, [LineRequest("apple", 1)]))
    return ids


def numbers(store: EventStore, ids: list[str]) -> dict[str, Numbered | None]:
    return {checkout_id: receipt_number(store, checkout_id) for checkout_id in ids}


async def drain(shop: Shop) -> None:
    async with shop.runtime() as runtime:
        await runtime.drain(timeout=60)


@pytest.fixture(params=["sqlite", "three lanes"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        with SqliteEventStore(tmp_path / "shop.db", registry=REGISTRY) as opened:
            yield opened
    else:
        yield MemoryEventStore(lane_count=3, registry=REGISTRY)


@pytest.mark.parametrize(
    ("numbered", "cashed_up"),
    [(0.3, 0.7), (0.7, 0.3), (0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (0.0, 0.0)],
    ids=["numbering behind", "numbering ahead", "never numbered", "never cashed up", "even", "new"],
)
def test_an_upgrade_keeps_every_number_and_numbers_the_rest_densely(
    store: EventStore, numbered: float, cashed_up: float
) -> None:
    shop = opened(store, 0)
    before = ring_up(shop, 0, 24)
    for lane in range(store.lane_count):  # where the old processors stood at the upgrade
        head = store.head(lane)
        run_to(store, old_receipts, lane, round(head * numbered))
        run_to(store, old_cash_up, lane, round(head * cashed_up))
    given = {key: found for key, found in numbers(store, before).items() if found is not None}
    assert len(given) < len(before) or numbered == 1.0
    after = ring_up(shop, 24, 9)
    asyncio.run(drain(shop))
    assert numbering_violations(store) == []  # each till 1..n, every checkout numbered
    assert {key: numbers(store, before)[key] for key in given} == given  # kept as printed
    for lane in range(store.lane_count):
        assert is_retired(store.checkpoint(RETIRED, lane))
        at = store.read_view(HANDOVER_VIEW, str(lane))
        assert at is not None and int(at) <= store.head(lane)
    assert all(found is not None for found in numbers(store, after).values())


def test_what_an_earlier_cash_up_passed_after_the_handover_is_numbered_next_time(
    store: EventStore,
) -> None:
    shop = opened(store, 6)
    asyncio.run(drain(shop))  # handed over
    passed = ring_up(shop, 6, 9)
    for lane in range(store.lane_count):  # a worker of an earlier version takes the cash-up
        run_to(store, old_cash_up, lane, store.head(lane))
    assert all(found is None for found in numbers(store, passed).values())
    assert any("not numbered" in problem for problem in numbering_violations(store))
    asyncio.run(drain(shop))  # this version takes it back
    assert numbering_violations(store) == []


def test_a_worker_still_running_the_old_processor_is_refused_and_numbers_nothing() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    shop = opened(store, 6)
    old = LaneProcessor(store, old_receipts(3), 0, scheduled=True)
    assert old.step().handled == 2  # an old worker, between two batches
    asyncio.run(drain(shop))  # the new version takes over
    ring_up(shop, 6, 4)
    with pytest.raises(CheckpointConflict):
        old.step()  # its batch under way: refused, nothing written
    assert old.step().scanned == 0  # then it finds nothing more to number
    asyncio.run(drain(shop))
    assert numbering_violations(store) == []


def test_a_handover_that_loses_a_race_to_an_old_worker_looks_again() -> None:
    inner = MemoryEventStore(registry=REGISTRY)
    shop = opened(inner, 8)
    run_to(inner, old_cash_up, 0, inner.head(0))
    old = LaneProcessor(inner, old_receipts(4), 0, scheduled=True)
    raced: list[tuple[int, int]] = []

    def old_worker_first(processor: str, lane: int, expected: int, new: int) -> None:
        if processor == RETIRED and not raced:  # it commits while the handover is under way
            raced.append((expected, new))
            old.step()

    racing = FaultyStore(inner, old_worker_first)
    handover.hand_over(racing, 0, NAME)
    assert raced and is_retired(inner.checkpoint(RETIRED, 0))
    asyncio.run(drain(shop))
    assert numbering_violations(inner) == []


def test_a_handover_that_keeps_losing_gives_the_step_up_instead_of_spinning() -> None:
    inner = MemoryEventStore(registry=REGISTRY)
    opened(inner, 2)
    attempts: list[int] = []

    def always_beaten(processor: str, lane: int, expected: int, new: int) -> None:
        attempts.append(expected)
        if len(attempts) > 100:
            raise RuntimeError("the handover spins")
        raise CheckpointConflict(processor, lane, expected, expected + 1)

    with pytest.raises(CheckpointConflict):
        handover.hand_over(FaultyStore(inner, always_beaten), 0, NAME)
    assert len(attempts) == handover.LOST_RACES_IN_TURN
    assert not is_retired(inner.checkpoint(RETIRED, 0))  # nothing written; the next step retries


def test_a_long_catch_up_commits_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handover, "CATCH_UP_BATCH", 3)
    inner = MemoryEventStore(registry=REGISTRY)
    opened(inner, 10)
    run_to(inner, old_cash_up, 0, inner.head(0))  # never numbered: ten to catch up
    commits: list[tuple[int, int]] = []

    def count(processor: str, lane: int, expected: int, new: int) -> None:
        if processor == RETIRED:
            commits.append((expected, new))

    handover.hand_over(FaultyStore(inner, count), 0, NAME)
    assert [new for _, new in commits[:-1]] == list(range(3, inner.head(0), 3))
    assert is_retired(commits[-1][1])
    assert numbering_violations(inner) == []


def test_the_cash_up_refuses_a_lane_not_handed_over_rather_than_number_twice() -> None:
    store = MemoryEventStore(registry=REGISTRY)
    opened(store, 2)
    undeclared = Processor(NAME, CashUp(), types=SUBSCRIBED)  # no prepare: no handover
    with pytest.raises(HandlerFailed) as failed:
        LaneProcessor(store, undeclared, 0).step()
    assert isinstance(failed.value.__cause__, NotHandedOver)
    assert receipt_number(store, "c-0") is None


def test_naming_the_retired_processor_is_refused_naming_its_successor(tmp_path: Path) -> None:
    with pytest.raises(RetiredProcessor, match="'receipts' is retired: 'tills' does its work"):
        Shop(MemoryEventStore(registry=REGISTRY)).runtime(run=["receipts"])
    database = tmp_path / "shop.db"
    SqliteEventStore(database, registry=REGISTRY).close()
    worker = CliRunner().invoke(app, ["worker", "--run", "receipts", "--database", str(database)])
    assert worker.exit_code == 2, worker.output
    assert "'receipts' is retired: 'tills' does its work" in worker.output


def test_status_lists_the_retired_processor_as_retired(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=REGISTRY) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        ring_up(shop, 0, 2)
        asyncio.run(drain(shop))
    status = CliRunner().invoke(app, ["status", "--database", str(database)], terminal_width=200)
    assert status.exit_code == 0, status.output
    retired = [line for line in status.output.splitlines() if "receipts" in line]
    assert len(retired) == 1 and "(retired)" in retired[0], status.output
    assert str(RETIRED_AT) not in status.output.replace(",", "")
