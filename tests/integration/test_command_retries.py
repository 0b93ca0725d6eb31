"""A keyed command's retry answers exactly what its first call answered — also when the
command wrote several events (a delivery or count that clears a shortfall), after the
process restarted, and from the CLI; a retried count is never applied again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import Receipt, SqliteEventStore
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.errors import CheckoutConflict
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


@pytest.fixture
def shop(database: Path) -> Iterator[Shop]:
    with SqliteEventStore(database, registry=REGISTRY, durability="off") as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("milk", "Milk", 99))
        shop.inventory.receive(ReceiveStock("milk", 10))
        yield shop


async def _settle(shop: Shop) -> None:
    async with shop.runtime() as runtime:
        await runtime.drain(timeout=30)


async def _short_by_two(shop: Shop) -> None:
    shop.sale.checkout(Checkout("big", "till-1", [LineRequest("milk", 12)]))
    await _settle(shop)
    level = shop.inventory.level("milk")
    assert (level.stock, level.short) == (-2, 2)


def _types(shop: Shop, receipt: Receipt, product_id: str = "milk") -> list[str]:
    """The types of the events of the stock stream up to the receipt's version."""
    stream = stock_stream(product_id)
    return [event.type for event in shop.store.read_stream(stream, 0, receipt.streams[stream])]


async def test_a_delivery_that_clears_a_shortfall_names_its_last_event_first_and_on_retry(
    shop: Shop, database: Path
) -> None:
    await _short_by_two(shop)
    delivery = ReceiveStock("milk", 5, "d-1")
    first = shop.inventory.receive(delivery)
    assert _types(shop, first)[-2:] == ["StockReceived", "ShortfallResolved"]
    assert first.streams == {"stock-milk": 5}
    assert shop.inventory.receive(delivery) == first
    shop.store.close()
    with SqliteEventStore(database, registry=REGISTRY) as reopened:
        assert Shop(reopened).inventory.receive(delivery) == first
        assert Shop(reopened).inventory.level("milk").stock == 3
    cli = runner.invoke(app, ["receive", "milk", "5", "--delivery-id", "d-1", "-d", str(database)])
    assert cli.exit_code == 0, cli.output
    assert cli.stdout.strip() == encode_receipt(first)


async def test_a_count_that_clears_a_shortfall_names_its_last_event_and_is_never_reapplied(
    shop: Shop, database: Path
) -> None:
    await _short_by_two(shop)
    count = CountStock("milk", 4, "n-1")
    first = shop.inventory.count(count)
    assert _types(shop, first)[-2:] == ["StockCounted", "ShortfallResolved"]
    shop.inventory.receive(ReceiveStock("milk", 6))  # the shelf moves on: 10
    assert shop.inventory.count(count) == first
    assert shop.inventory.level("milk").stock == 10, "a retried count was applied again"
    shop.store.close()
    with SqliteEventStore(database, registry=REGISTRY) as reopened:
        assert Shop(reopened).inventory.count(count) == first
    cli = runner.invoke(app, ["count", "milk", "4", "--count-id", "n-1", "-d", str(database)])
    assert cli.exit_code == 0, cli.output
    assert cli.stdout.strip() == encode_receipt(first)
    with SqliteEventStore(database, registry=REGISTRY) as reopened:
        assert Shop(reopened).inventory.level("milk").stock == 10


def test_a_count_id_reused_for_another_count_is_a_conflict_naming_the_field(shop: Shop) -> None:
    shop.inventory.count(CountStock("milk", 4, "n-1"))
    with pytest.raises(CheckoutConflict) as refused:
        shop.inventory.count(CountStock("milk", 5, "n-1"))
    assert (refused.value.key_name, refused.value.field) == ("count_id", "counted")
    assert shop.inventory.level("milk").stock == 4


async def test_a_checkout_that_causes_a_shortfall_and_a_return_answer_the_same_on_retry(
    shop: Shop, database: Path
) -> None:
    checkout = Checkout("big", "till-1", [LineRequest("milk", 12)])
    first = shop.sale.checkout(checkout)
    await _settle(shop)
    assert shop.inventory.level("milk").short == 2
    assert shop.sale.checkout(checkout) == first
    back = ReturnItems("r-1", "big", [LineRequest("milk", 3)])
    returned = shop.sale.return_items(back)
    await _settle(shop)
    assert shop.inventory.level("milk").short == 0
    assert shop.sale.return_items(back) == returned
    shop.store.close()
    with SqliteEventStore(database, registry=REGISTRY) as reopened:
        again = Shop(reopened)
        assert again.sale.checkout(checkout) == first
        assert again.sale.return_items(back) == returned
    cli = runner.invoke(
        app, ["checkout", "--till", "till-1", "--id", "big", "milk=12", "-d", str(database)]
    )
    assert cli.exit_code == 0, cli.output
    assert cli.stdout.strip() == encode_receipt(first)
