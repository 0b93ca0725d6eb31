"""CSV exports over HTTP: the report's rows with their as-of, the totals apart, sales per
hour and per day in the shop's time zone; RFC 4180 quoting, money as decimal strings with
two places; bad dates and ranges are 422 problems naming the parameter."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.service.settings import load_settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
async def kathmandu(tmp_path: Path) -> AsyncIterator[Api]:
    """A shop in Asia/Kathmandu (UTC+05:45) whose clock says 2026-12-06 12:00 UTC."""
    settings = load_settings(timezone="Asia/Kathmandu", database=str(tmp_path / "shop.db"))
    with SqliteEventStore(settings.database, registry=service_registry()) as store:
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
        app = create_app(settings, store=store, clock=lambda: NOW)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tillflow.test") as client,
        ):
            api = Api(client, store, tokens, app)
            added = await api.post(
                "/catalog", {"product_id": "milk", "name": 'Milk "fresh", 1 l', "price": 105}
            )
            assert added.status_code == 201, added.text
            yield api


async def _sell(api: Api, checkout_id: str, at: str, quantity: int = 1, **more: Any) -> str:
    sold = await api.post(
        "/checkouts",
        {
            "checkout_id": checkout_id,
            "till_id": "till-1",
            "at": at,
            "lines": [{"product_id": "milk", "quantity": quantity}],
            **more,
        },
        role=Role.TILL,
    )
    assert sold.status_code == 201, sold.text
    token: str = sold.json()["receipt"]["token"]
    return token


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


async def test_the_report_csv_has_a_row_per_product_with_its_as_of_quoted_as_rfc_4180(
    kathmandu: Api,
) -> None:
    token = await _sell(kathmandu, "c-1", "2026-12-06T05:00:00Z", quantity=3)
    response = await kathmandu.get("/report.csv", params={"wait_for": token})
    assert response.headers["tillflow-waited"] == "reached"
    assert response.headers["tillflow-lag-events"].isdigit()
    assert response.text.startswith("product_id,name,price,tax_rate,")
    assert '\r\nmilk,"Milk ""fresh"", 1 l",1.05,standard,false,3,0,3.15,0.52,2.63,' in (
        response.text
    )
    [row] = _rows(response)
    shown = (await kathmandu.get("/report")).json()["rows"][0]
    assert row["stock_left"] == "-3" and row["open_shortfall"] == "3"
    assert row["as_of_version"] == str(shown["as_of"]["version"])
    assert row["as_of_position"] == str(shown["as_of"]["position"])
    assert row["as_of_time"] == datetime.fromtimestamp(shown["as_of"]["at"], UTC).isoformat()
    totals = _rows(await kathmandu.get("/report/totals.csv"))
    assert [(t["scope"], t["rate"], t["revenue"], t["tax"], t["net"]) for t in totals] == [
        ("total", "", "3.15", "0.52", "2.63"),
        ("rate", "standard", "3.15", "0.52", "2.63"),
    ]
    assert totals[0]["checkouts"] == "1" and totals[1]["checkouts"] == ""


async def test_sales_per_hour_fall_in_the_shops_time_zone_with_takings_by_tender(
    kathmandu: Api,
) -> None:
    await _sell(kathmandu, "before", "2026-12-05T18:14:59Z")  # 23:59:59 on the 5th there
    await _sell(
        kathmandu, "first", "2026-12-05T18:15:00Z", tenders=[{"type": "cash", "amount": 500}]
    )
    token = await _sell(
        kathmandu,
        "card",
        "2026-12-06T04:20:00Z",
        2,
        tenders=[{"type": "card", "amount": 210, "card": "tok-1"}],
    )
    hours = _rows(await kathmandu.get("/sales/hourly.csv", params={"wait_for": token}))
    assert len(hours) == 24  # the 6th there: the shop clock's day
    assert hours[0]["hour"] == "2026-12-06T00:00:00+05:45"
    assert hours[0]["time_zone"] == "Asia/Kathmandu"
    midnight = hours[0]
    assert (midnight["checkouts"], midnight["sales"], midnight["cash"], midnight["card"]) == (
        "1",
        "1.05",
        "1.05",
        "0.00",
    )  # 5.00 handed over, 3.95 change
    ten = hours[10]  # 04:20 UTC is 10:05 there
    assert (ten["hour"], ten["units_sold"], ten["card"], ten["tax"]) == (
        "2026-12-06T10:00:00+05:45",
        "2",
        "2.10",
        "0.35",
    )
    assert all(h["as_of_position"] == hours[0]["as_of_position"] for h in hours)
    the_fifth = _rows(await kathmandu.get("/sales/hourly.csv", params={"date": "2026-12-05"}))
    assert the_fifth[23]["checkouts"] == "1"
    days = _rows(
        await kathmandu.get("/sales/daily.csv", params={"from": "2026-12-04", "to": "2026-12-06"})
    )
    assert [(d["day"], d["checkouts"], d["revenue"]) for d in days] == [
        ("2026-12-04", "0", "0.00"),
        ("2026-12-05", "1", "1.05"),
        ("2026-12-06", "2", "3.15"),
    ]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/sales/hourly.csv", {"date": "2026-13-01"}, "date"),
        ("/sales/daily.csv", {"from": "2026-12-06", "to": "2026-12-05"}, "to"),
        ("/sales/daily.csv", {"from": "2026-01-01", "to": "2027-01-02"}, "to"),
        ("/sales/daily.csv", {"from": "2026-12-06"}, "to"),
        ("/report.csv", {"wait_for": "0:999999"}, "wait_for"),
        ("/report.csv", {"format": "xlsx"}, "format"),
    ],
)
async def test_a_bad_date_or_range_is_a_422_naming_the_parameter(
    kathmandu: Api, path: str, params: dict[str, str], field: str
) -> None:
    refused = await kathmandu.get(path, params=params)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in refused.json()["errors"]]


async def test_exports_are_for_managers_and_viewers(kathmandu: Api) -> None:
    assert (await kathmandu.get("/report.csv", role=Role.TILL)).status_code == 403
    assert (await kathmandu.client.get("/sales/hourly.csv")).status_code == 401
    assert (await kathmandu.get("/sales/hourly.csv", role=Role.MANAGER)).status_code == 200


async def test_sales_per_hour_as_json_are_the_csvs_figures_in_cents(kathmandu: Api) -> None:
    token = await _sell(
        kathmandu,
        "split",
        "2026-12-06T04:20:00Z",
        2,
        tenders=[{"type": "card", "amount": 110, "card": "tok-1"}, {"type": "cash", "amount": 200}],
    )
    csv_hours = _rows(await kathmandu.get("/sales/hourly.csv", params={"wait_for": token}))
    answer = await kathmandu.get("/sales/hourly")
    assert answer.status_code == 200, answer.text
    sales = answer.json()
    assert (sales["date"], sales["time_zone"]) == ("2026-12-06", "Asia/Kathmandu")
    assert [hour["hour"] for hour in sales["hours"]] == [row["hour"] for row in csv_hours]
    ten = sales["hours"][10]
    assert (ten["checkouts"], ten["revenue"], ten["card"], ten["cash"]) == (1, 210, 110, 100)
    assert sales["day"]["revenue"] == sales["day"]["cash"] + sales["day"]["card"] == 210
    assert sales["as_of"]["position"] == int(csv_hours[0]["as_of_position"])
    other = await kathmandu.get("/sales/hourly", params={"date": "2026-12-05"})
    assert other.json()["day"]["checkouts"] == 0


@pytest.mark.parametrize("day", ["0", "20261206", "2026-12-6", "2026-02-30", "١٢٣٤-٠١-٠١"])
async def test_a_day_is_written_yyyy_mm_dd_and_nothing_else(kathmandu: Api, day: str) -> None:
    for path in ("/sales/hourly", "/sales/hourly.csv"):
        refused = await kathmandu.get(path, params={"date": day})
        assert refused.status_code == 422, (path, day, refused.text)
        assert [error["field"] for error in refused.json()["errors"]] == ["date"]
    refused = await kathmandu.get("/sales/daily.csv", params={"from": day, "to": "2026-12-06"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "from"
