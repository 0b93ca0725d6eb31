"""``tillflow dlq`` on an SQLite file: a checkout Inventory parked is listed and shown;
bad requests are refused with nothing recorded; a skip names who and why, and a running
shop carries it out; the report then parks the sale it cannot count, skipped in turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from tests.parked_checkouts import BUG, park_checkout
from tillflow.cli import app
from tillflow.engine import EventStore, SqliteEventStore
from tillflow.engine.dead_letters import parked_keys
from tillflow.engine.parking import dead_letter_stream
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.processor import NAME as INVENTORY
from tillflow.shop.reporting.projection import NAME as REPORTING
from tillflow.shop.sale.commands import AddProduct

runner = CliRunner()


def _dlq(database: Path, *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, ["dlq", *arguments, "--database", str(database)])
    return result.exit_code, result.output


def test_a_parked_checkout_is_shown_refused_badly_and_skipped_with_a_reason(
    tmp_path: Path,
) -> None:
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=service_registry()) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        park_checkout(store, "c-bad", "apple", 2)
        (parked,) = parked_keys(store, [INVENTORY])
    dead_letter = parked.id

    code, listed = _dlq(database, "list")
    assert code == 0, listed
    assert dead_letter in listed and "checkout-c-bad" in listed and BUG in listed
    code, shown = _dlq(database, "show", dead_letter)
    assert code == 0, shown
    assert "Traceback" in shown and BUG in shown

    assert _dlq(database, "skip", dead_letter, "--by", "alice", "--reason", " ")[0] == 1
    assert _dlq(database, "skip", dead_letter, "--by", "alice")[0] == 2  # no reason
    assert (
        _dlq(database, "retry", "inventory:00000000-0000-0000-0000-000000000000", "--by", "a")[0]
        == 1
    )
    with SqliteEventStore(database, registry=service_registry()) as store:
        assert store.stream_version(dead_letter_stream(INVENTORY)) == 0

    code, said = _dlq(database, "skip", dead_letter, "--by", "alice", "--reason", "test sale")
    assert code == 0, said
    code, again = _dlq(database, "retry", dead_letter, "--by", "bob")
    assert (code, "pending" in again) == (1, True)

    with SqliteEventStore(database, registry=service_registry()) as store:
        _drain(store)
        assert parked_keys(store, [INVENTORY]) == []
        (audit,) = store.read_stream(dead_letter_stream(INVENTORY))
        assert (audit.type, audit.payload()["by"]) == ("DeadLetterSkipped", "alice")
        (counted,) = parked_keys(store, [REPORTING])  # a sale Inventory never took
        assert "MissingEffects" in counted.letter.error
    code, resolved = _dlq(database, "retry", dead_letter, "--by", "bob")
    assert (code, "already resolved" in resolved) == (1, True)
    code, said = _dlq(database, "skip", counted.id, "--by", "alice", "--reason", "skipped")
    assert code == 0, said
    with SqliteEventStore(database, registry=service_registry()) as store:
        _drain(store)
        assert parked_keys(store, [INVENTORY, REPORTING]) == []


def _drain(store: EventStore) -> None:
    """Run the shop's processors until they have caught up."""

    async def run() -> None:
        async with Shop(store).runtime() as runtime:
            await runtime.drain(timeout=10)

    asyncio.run(run())
