"""CSV from the command line: ``tillflow report --csv [--totals]`` and ``tillflow sales
hourly | daily`` print what the HTTP exports serve (one format), in the shop's time zone;
bad dates, zones and ranges are one line and exit code 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.service.exports import decimal
from tillflow.shop.assembly import Shop
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest, ReturnItems
from tillflow.shop.sale.tenders import Tender

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A shop file: a sale at 22:50 UTC on 6 Dec (23:50 in Paris), paid 20.00 cash for
    12.50, and one at 23:10 UTC (00:10 on the 7th in Paris) by card, half returned."""
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        shop = Shop(store)
        shop.sale.add_product(AddProduct("tea", "Tea, green", 250, tax_rate="reduced"))

        async def sell() -> None:
            async with shop.runtime() as runtime:
                at = datetime.fromisoformat
                await shop.sale.checkout_async(
                    Checkout(
                        "c-1",
                        "t-1",
                        [LineRequest("tea", 5)],
                        at("2026-12-06T22:50Z"),
                        [Tender("cash", 2000)],
                    )
                )
                await shop.sale.checkout_async(
                    Checkout(
                        "c-2",
                        "t-1",
                        [LineRequest("tea", 2)],
                        at("2026-12-06T23:10Z"),
                        [Tender("card", 500, "tok")],
                    )
                )
                back = ReturnItems("r-1", "c-2", [LineRequest("tea", 1)], at("2026-12-07T08:00Z"))
                await asyncio.to_thread(shop.sale.return_items, back)
                await runtime.drain(timeout=30)

        asyncio.run(sell())
    return str(path)


def _csv(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output, newline="")))


def test_money_is_a_decimal_string_with_two_places() -> None:
    assert [decimal(c) for c in (0, 5, -5, 100, -1999, 123456789)] == [
        "0.00",
        "0.05",
        "-0.05",
        "1.00",
        "-19.99",
        "1234567.89",
    ]


def test_report_csv_prints_the_rows_and_with_totals_the_totals(database: str) -> None:
    rows = runner.invoke(app, ["report", "--csv", "-d", database])
    assert rows.exit_code == 0, rows.output
    assert b'\r\ntea,"Tea, green",2.50,reduced,false,7,1,15.00,0.72,14.28,' in rows.stdout_bytes
    [row] = _csv(rows.stdout)
    shown = json.loads(runner.invoke(app, ["report", "--json", "-d", database]).stdout)
    as_of = shown["rows"][0]["as_of"]
    assert (row["as_of_position"], row["as_of_version"]) == (
        str(as_of["position"]),
        str(as_of["version"]),
    )
    assert row["as_of_time"] == datetime.fromtimestamp(as_of["at"], UTC).isoformat()
    totals = runner.invoke(app, ["report", "--csv", "--totals", "-d", database])
    assert totals.exit_code == 0, totals.output
    assert [(t["scope"], t["rate"], t["revenue"]) for t in _csv(totals.stdout)] == [
        ("total", "", "15.00"),
        ("rate", "reduced", "15.00"),
    ]
    alone = runner.invoke(app, ["report", "--totals", "-d", database])
    assert alone.exit_code == 2 and "--csv" in alone.output


def test_sales_per_hour_and_day_in_the_zone_asked_for(database: str) -> None:
    utc = runner.invoke(app, ["sales", "hourly", "--date", "2026-12-06", "-d", database])
    assert utc.exit_code == 0, utc.output
    hours = _csv(utc.stdout)
    assert len(hours) == 24 and hours[22]["hour"] == "2026-12-06T22:00:00+00:00"
    assert (hours[22]["sales"], hours[22]["cash"], hours[23]["card"]) == ("12.50", "12.50", "5.00")
    paris = runner.invoke(
        app,
        ["sales", "hourly", "--date", "2026-12-07", "--timezone", "Europe/Paris", "-d", database],
    )
    assert paris.exit_code == 0, paris.output
    hours = _csv(paris.stdout)
    assert hours[0]["hour"] == "2026-12-07T00:00:00+01:00" and hours[0]["checkouts"] == "1"
    assert (hours[9]["returns"], hours[9]["card"], hours[9]["revenue"]) == ("1", "-2.50", "-2.50")
    days = runner.invoke(
        app,
        ["sales", "daily", "--from", "2026-12-06", "--to", "2026-12-07", "-d", database],
        env={"TILLFLOW_TIMEZONE": "Europe/Paris"},
    )
    assert days.exit_code == 0, days.output
    assert [
        (d["day"], d["checkouts"], d["revenue"], d["time_zone"]) for d in _csv(days.stdout)
    ] == [
        ("2026-12-06", "1", "12.50", "Europe/Paris"),
        ("2026-12-07", "1", "2.50", "Europe/Paris"),
    ]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["hourly", "--date", "2026-02-30"], "--date"),
        (["hourly", "--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (["daily", "--from", "2026-12-07", "--to", "2026-12-06"], "to"),
    ],
)
def test_a_bad_date_zone_or_range_is_one_line_and_exit_2(
    database: str, args: list[str], named: str
) -> None:
    refused = runner.invoke(app, ["sales", *args, "-d", database])
    assert refused.exit_code == 2
    assert named in refused.output and refused.output.strip().count("\n") == 0
