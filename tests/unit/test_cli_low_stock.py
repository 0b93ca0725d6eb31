"""``tillflow reorder-point``: sets a product's reorder point from a script, prints the
receipt token, says when the product is low; refusals exit 1 naming the field."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.service.receipt_tokens import decode_receipt
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.sale.commands import AddProduct

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.inventory.receive(ReceiveStock("apple", 4))
    return str(path)


def _kinds(database: str) -> list[str]:
    with SqliteEventStore(database, registry=service_registry()) as store:
        return [event.type for event in store.read_stream("stock-apple")]


def test_a_point_above_the_stock_is_low_at_once_and_a_keyed_repeat_prints_the_same(
    database: str,
) -> None:
    arguments = ["reorder-point", "apple", "5", "--change-id", "p-1", "-d", database]
    first = runner.invoke(app, arguments)
    assert first.exit_code == 0, first.output
    assert decode_receipt(first.stdout.strip()).positions
    assert "stock now 4, below its reorder point 5" in first.stderr
    again = runner.invoke(app, arguments)
    assert again.stdout == first.stdout
    assert _kinds(database) == ["StockReceived", "ReorderPointSet", "LowStock"]


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        (["apple", "-1"], 1, "reorder_point=-1"),
        (["kiwi", "1"], 1, "kiwi"),
        (["apple", "two"], 2, "point"),
    ],
)
def test_refusals_exit_1_naming_the_field_and_write_nothing(
    database: str, arguments: list[str], code: int, says: str
) -> None:
    result = runner.invoke(app, ["reorder-point", "-d", database, "--", *arguments])
    assert result.exit_code == code, result.output
    assert says in result.output
    assert _kinds(database) == ["StockReceived"]


def test_a_bad_change_id_is_refused_naming_it(database: str) -> None:
    arguments = ["reorder-point", "apple", "1", "--change-id", "a b", "-d", database]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1, result.output
    assert "change_id" in result.output
    assert _kinds(database) == ["StockReceived"]


def test_the_report_marks_a_low_product_with_its_point(database: str) -> None:
    runner.invoke(app, ["reorder-point", "apple", "3", "-d", database])
    runner.invoke(app, ["checkout", "--till", "t", "apple=2", "-d", database])  # 2: below 3

    async def drain() -> None:
        with SqliteEventStore(Path(database), registry=service_registry()) as store:
            async with Shop(store).runtime() as runtime:
                await runtime.drain(10)

    asyncio.run(drain())
    table = runner.invoke(app, ["report", "-d", database], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "2 < 3" in table.output
