"""The shop's commands for people and scripts: tokens, checkout, receive, report, worker.
Exit codes: 0 done, 1 refused by the shop, 2 bad usage; one line on error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.service.receipt_tokens import decode_receipt
from tillflow.shop.assembly import Shop
from tillflow.shop.sale.commands import AddProduct

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("apple", "Apple", 120))
        shop.sale.add_product(AddProduct("pear", "Pear", 80))
    return str(path)


def one_line(output: str) -> bool:
    return output.strip().count("\n") == 0


def test_token_create_prints_the_token_once_and_list_never_shows_it(tmp_path: Path) -> None:
    database = str(tmp_path / "new.db")  # created by the first token
    made = runner.invoke(
        app, ["token", "create", "--role", "till", "--name", "till-3", "-d", database]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    with SqliteEventStore(Path(database), registry=service_registry()) as store:
        found = TokenBook(store).authenticate(secret)
        assert found is not None
        assert (found.name, found.role) == ("till-3", Role.TILL)
    listed = runner.invoke(app, ["token", "list", "-d", database])
    assert listed.exit_code == 0
    assert "till-3" in listed.output
    assert secret not in listed.output
    again = runner.invoke(
        app, ["token", "create", "--role", "till", "--name", "till-3", "-d", database]
    )
    assert again.exit_code == 1
    assert one_line(again.output)
    assert "revoke it first" in again.output
    revoked = runner.invoke(app, ["token", "revoke", "--name", "till-3", "-d", database])
    assert revoked.exit_code == 0
    twice = runner.invoke(app, ["token", "revoke", "--name", "till-3", "-d", database])
    assert twice.exit_code == 1
    wrong_role = runner.invoke(
        app, ["token", "create", "--role", "admin", "--name", "x", "-d", database]
    )
    assert wrong_role.exit_code == 2
    bad_name = runner.invoke(
        app, ["token", "create", "--role", "till", "--name", "a b", "-d", database]
    )
    assert bad_name.exit_code == 1


def test_checkout_prints_a_receipt_token_and_a_repeat_prints_the_same(database: str) -> None:
    first = runner.invoke(
        app, ["checkout", "--till", "till-1", "--id", "c-1", "apple=2", "pear=1", "-d", database]
    )
    assert first.exit_code == 0, first.output
    token = first.stdout.strip()
    assert decode_receipt(token).positions
    assert "total 3.20" in first.stderr
    again = runner.invoke(
        app, ["checkout", "--till", "till-1", "--id", "c-1", "apple=2", "pear=1", "-d", database]
    )
    assert again.stdout.strip() == token


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        (["--till", "t", "kiwi=1"], 1, "kiwi"),
        (["--till", "t", "apple=0"], 1, "quantity"),
        (["--till", "t", "--id", "c-1", "apple=1"], 1, "different"),
        (["--till", "t", "apple"], 2, "PRODUCT=QUANTITY"),
        (["--till", "t", "apple=two"], 2, "PRODUCT=QUANTITY"),
        (["apple=1"], 2, "--till"),
    ],
)
def test_checkout_refusals_are_exit_1_and_bad_usage_exit_2(
    database: str, arguments: list[str], code: int, says: str
) -> None:
    runner.invoke(app, ["checkout", "--till", "t", "--id", "c-1", "pear=1", "-d", database])
    result = runner.invoke(app, ["checkout", *arguments, "-d", database])
    assert result.exit_code == code, result.output
    assert says in result.output


def test_checkout_takes_cash_card_or_both_and_names_a_bad_tender(database: str) -> None:
    split = runner.invoke(
        app,
        [
            "checkout",
            "--till",
            "t",
            "--card",
            "120:tok-1",
            "--cash",
            "500",
            "pear=1",
            "apple=1",
            "-d",
            database,
        ],
    )
    assert split.exit_code == 0, split.output
    assert "paid card 1.20 + cash 5.00, change 4.20" in split.stderr
    short = runner.invoke(
        app, ["checkout", "--till", "t", "--cash", "100", "pear=2", "-d", database]
    )
    assert short.exit_code == 1 and one_line(short.output)
    assert "tenders[0].amount=100" in short.output
    bad = runner.invoke(app, ["checkout", "--till", "t", "--card", "tok", "pear=1", "-d", database])
    assert bad.exit_code == 2 and "CENTS:REFERENCE" in bad.output


def test_receive_prints_a_receipt_token_and_refuses_unknown_products(database: str) -> None:
    received = runner.invoke(app, ["receive", "apple", "12", "-d", database])
    assert received.exit_code == 0, received.output
    assert decode_receipt(received.stdout.strip()).positions
    assert "stock now 12" in received.stderr
    unknown = runner.invoke(app, ["receive", "kiwi", "1", "-d", database])
    assert unknown.exit_code == 1
    assert one_line(unknown.output)
    missing = runner.invoke(app, ["receive", "apple", "1", "-d", database + ".missing"])
    assert missing.exit_code == 2


def test_report_prints_rows_with_as_of_and_totals_or_json(database: str) -> None:
    runner.invoke(app, ["receive", "apple", "10", "-d", database])
    runner.invoke(app, ["checkout", "--till", "t", "apple=3", "-d", database])

    async def drain() -> None:
        with SqliteEventStore(Path(database), registry=service_registry()) as store:
            async with Shop(store).runtime() as runtime:
                await runtime.drain(10)

    asyncio.run(drain())
    table = runner.invoke(app, ["report", "-d", database], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "report as of position" in table.output
    assert "apple" in table.output
    assert "revenue 3.60" in table.output
    assert "VAT 0.60 in it: standard 20 %: 0.60 of 3.60" in table.output
    as_json = runner.invoke(app, ["report", "--json", "-d", database])
    body = json.loads(as_json.stdout)
    apple = next(row for row in body["rows"] if row["product_id"] == "apple")
    assert (apple["units_sold"], apple["stock_left"]) == (3, 7)
    assert body["freshness"]["lag_events"] == 0


def test_worker_refuses_an_unknown_processor(database: str) -> None:
    result = runner.invoke(app, ["worker", "--run", "ledger", "-d", database])
    assert result.exit_code == 2
    assert "ledger" in result.output


@pytest.mark.parametrize("value", ["-1", "lots", "10000001"])
def test_worker_refuses_a_collector_threshold_out_of_range(database: str, value: str) -> None:
    result = runner.invoke(app, ["worker", "--gc-threshold", value, "-d", database])
    assert result.exit_code == 2
    assert "--gc-threshold" in result.output
