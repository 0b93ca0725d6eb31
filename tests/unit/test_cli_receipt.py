"""``tillflow receipt ID``: the text receipt (or ``--html``, or a return's with
``--return``) from the store file, in the shop's time zone and name from the environment;
unknown ids and unnumbered checkouts refused on one line (exit 1), bad settings exit 2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.receipts.text import WIDTH
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems

runner = CliRunner()


async def _number(shop: Shop) -> None:
    async with shop.runtime() as runtime:  # what a running server does
        await runtime.drain(timeout=30)


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.sale.add_product(AddProduct("pear", "Pear, " + "conference " * 8, 80))
        for checkout_id in ("c-1", "c-2"):
            shop.sale.checkout(
                Checkout(checkout_id, "till-1", [LineRequest("apple", 2), LineRequest("pear", 1)])
            )
        shop.sale.return_items(ReturnItems("r-1", "c-2", [LineRequest("pear", 1)]))
        asyncio.run(_number(shop))
        shop.sale.checkout(Checkout("c-late", "till-1", [LineRequest("apple", 1)]))
    return str(path)


@pytest.fixture(autouse=True)
def _shop_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILLFLOW_SHOP_NAME", "Market Stall")
    monkeypatch.setenv("TILLFLOW_TIMEZONE", "America/New_York")


def test_receipt_prints_the_48_column_text(database: str) -> None:
    printed = runner.invoke(app, ["receipt", "c-2", "-d", database])
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0].strip() == "Market Stall"
    assert lines[1] == f"{'Till till-1':<{WIDTH - 9}}Receipt 2"
    assert lines[2].endswith(" EST")  # New York time in December
    assert max(len(line) for line in lines) <= WIDTH
    assert "Pear, conference" in printed.stdout and "TOTAL" in printed.stdout


def test_receipt_return_and_html(database: str) -> None:
    returned = runner.invoke(app, ["receipt", "c-2", "--return", "r-1", "-d", database])
    assert returned.exit_code == 0, returned.output
    assert "REFUND" in returned.stdout and "For receipt 2 of " in returned.stdout
    page = runner.invoke(app, ["receipt", "c-1", "--html", "-d", database])
    assert page.exit_code == 0, page.output
    assert page.stdout.startswith("<!DOCTYPE html>") and "Receipt 1" in page.stdout


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["nope"], "checkout_id='nope': no such checkout"),
        (["c-1", "--return", "r-1"], "return_id='r-1': no such return"),
        (["c-late", "--timeout", "0.2"], "not numbered yet"),
    ],
)
def test_receipt_refusals_are_one_line_exit_1(
    database: str, arguments: list[str], said: str
) -> None:
    refused = runner.invoke(app, ["receipt", *arguments, "-d", database])
    assert refused.exit_code == 1
    assert said in refused.output and refused.output.strip().count("\n") == 0


def test_an_unknown_time_zone_is_a_usage_error(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TILLFLOW_TIMEZONE", "Europe/Atlantis")
    refused = runner.invoke(app, ["receipt", "c-1", "-d", database])
    assert refused.exit_code == 2
    assert "TILLFLOW_TIMEZONE: no time zone 'Europe/Atlantis'" in refused.output


@pytest.mark.parametrize("name", ["   ", "Shop\x1b[2J", "x" * 201])
def test_a_shop_name_a_printer_cannot_take_is_a_usage_error(
    database: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("TILLFLOW_SHOP_NAME", name)
    refused = runner.invoke(app, ["receipt", "c-1", "-d", database])
    assert refused.exit_code == 2
    assert "TILLFLOW_SHOP_NAME: must" in refused.output
