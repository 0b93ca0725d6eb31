"""``tillflow till``: open and close a till from a script (the receipt token on stdout, a
keyed repeat prints the same), X and Z reports from the cash-up's rows, refusals exit 1
naming the till or field and write nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.service.receipt_tokens import decode_receipt
from tillflow.shop.assembly import Shop
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest
from tillflow.shop.sale.tenders import CASH, Tender

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        Shop(store).sale.add_product(AddProduct("apple", "Apple", 120))
    return str(path)


def _sell_and_catch_up(database: str, checkout_id: str) -> None:
    """A sale of 2 apples paid with 5.00 in cash; then the processors catch up."""
    with SqliteEventStore(database, registry=service_registry()) as store:
        shop = Shop(store)
        lines = [LineRequest("apple", 2)]
        shop.sale.checkout(Checkout(checkout_id, "t1", lines, tenders=[Tender(CASH, 500)]))

        async def drain() -> None:
            async with shop.runtime() as runtime:
                await runtime.drain(timeout=60)

        asyncio.run(drain())


def _heads(database: str) -> dict[int, int]:
    with SqliteEventStore(database, registry=service_registry()) as store:
        return store.heads()


def test_a_day_from_the_command_line(database: str) -> None:
    opening = ["till", "open", "t1", "--float", "10000", "--session", "mon", "-d", database]
    opened = runner.invoke(app, opening)
    assert opened.exit_code == 0, opened.output
    assert decode_receipt(opened.stdout.strip()).positions
    assert "opened t1" in opened.stderr
    assert runner.invoke(app, opening).stdout == opened.stdout  # a keyed repeat
    _sell_and_catch_up(database, "c-1")
    x = runner.invoke(app, ["till", "x-report", "t1", "-d", database, "--json"])
    assert x.exit_code == 0, x.output
    session = json.loads(x.stdout)["session"]
    assert (session["takings"]["cash"], session["takings"]["change"]) == (240, 260)
    assert session["expected_cash"] == 10240
    closing = ["till", "close", "t1", "--counted", "10200", "--session", "mon", "-d", database]
    assert runner.invoke(app, closing).exit_code == 0
    _sell_and_catch_up(database, "c-1")  # a retry of the recorded sale: nothing new
    z = runner.invoke(app, ["till", "z-report", "t1", "mon", "-d", database])
    assert z.exit_code == 0, z.output
    assert "Z report of till t1" in z.stdout
    assert "expected in the drawer 102.40" in z.stdout
    assert "counted 102.00 · difference -0.40" in z.stdout


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        (["close", "t1", "--counted", "0"], 1, "till_id='t1': the till is not open"),
        (["open", "t1", "--float", "-1"], 1, "float=-1"),
        (["open", "t 1", "--float", "0"], 1, "till_id="),
        (["open", "t1", "--float", "lots"], 2, "float"),
        (["x-report", "t9"], 1, "till_id='t9'"),
    ],
)
def test_refusals_exit_naming_the_till_or_field_and_write_nothing(
    database: str, arguments: list[str], code: int, says: str
) -> None:
    before = _heads(database)
    refused = runner.invoke(app, ["till", *arguments, "-d", database])
    assert refused.exit_code == code, refused.output
    assert says in refused.stderr
    assert _heads(database) == before
