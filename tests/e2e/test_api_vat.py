"""VAT over HTTP: the rate table, a product's rate, net / tax / gross on every line, the
report's tax per rate; an unknown rate or a bad size is a 422 naming the field, nothing
written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


async def _put(api: Api, path: str, body: Any, role: Role = Role.MANAGER) -> httpx.Response:
    return await api.client.put(path, json=body, headers=api.auth(role))


async def _sell(api: Api, checkout_id: str, lines: dict[str, int]) -> dict[str, Any]:
    sold = await api.post(
        "/checkouts",
        {
            "checkout_id": checkout_id,
            "till_id": "till-1",
            "lines": [{"product_id": p, "quantity": q} for p, q in lines.items()],
        },
        role=Role.TILL,
    )
    assert sold.status_code == 201, sold.text
    body: dict[str, Any] = sold.json()
    return body


async def test_the_default_table_and_a_rate_defined_by_a_manager_are_listed(shop: Api) -> None:
    listed = await shop.get("/tax-rates")
    assert listed.status_code == 200
    assert listed.json()["rates"] == [
        {"rate": "reduced", "basis_points": 500},
        {"rate": "standard", "basis_points": 2000},
        {"rate": "zero", "basis_points": 0},
    ]
    defined = await _put(shop, "/tax-rates/super-reduced", {"basis_points": 210})
    assert defined.status_code == 200, defined.text
    assert defined.json()["rate"] == {"rate": "super-reduced", "basis_points": 210}
    rates = (await shop.get("/tax-rates")).json()["rates"]
    assert {"rate": "super-reduced", "basis_points": 210} in rates
    refused = await _put(shop, "/tax-rates/standard", {"basis_points": 1900}, role=Role.TILL)
    assert refused.status_code == 403


async def test_lines_record_net_tax_and_gross_and_the_report_adds_them_up_by_rate(
    shop: Api,
) -> None:
    added = await shop.post(
        "/catalog", {"product_id": "bread", "name": "Bread", "price": 250, "tax_rate": "reduced"}
    )
    assert added.status_code == 201, added.text
    assert added.json()["product"]["tax_rate"] == "reduced"
    sold = await _sell(shop, "c-1", {"apple": 4, "milk": 1, "bread": 3})
    lines = {line["product_id"]: line for line in sold["checkout"]["lines"]}
    # apple 4 × 1.20 at 20 %: 80 tax; milk 0.99: 16.5 → 16 (half to even);
    # bread 3 × 2.50 at 5 %: 35.71 → 36
    assert {p: (x["line_total"], x["tax"], x["net"]) for p, x in lines.items()} == {
        "apple": (480, 80, 400),
        "milk": (99, 16, 83),
        "bread": (750, 36, 714),
    }
    assert (lines["bread"]["tax_rate"], lines["bread"]["basis_points"]) == ("reduced", 500)
    assert sum(line["line_total"] for line in lines.values()) == sold["checkout"]["total"]
    back = await shop.post(
        "/checkouts/c-1/returns",
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        role=Role.TILL,
    )
    assert back.status_code == 201, back.text
    [refunded] = back.json()["returned"]["lines"]
    assert (refunded["refund"], refunded["tax"], refunded["net"]) == (120, 20, 100)

    report = await shop.get("/report", params={"wait_for": back.json()["receipt"]["token"]})
    body = report.json()
    assert body["freshness"]["waited"] == "reached"
    totals = body["totals"]
    assert (totals["revenue"], totals["tax"]) == (480 + 99 + 750 - 120, 80 + 16 + 36 - 20)
    assert totals["by_rate"] == [
        {"rate": "reduced", "basis_points": 500, "revenue": 750, "tax": 36, "net": 714},
        {"rate": "standard", "basis_points": 2000, "revenue": 459, "tax": 76, "net": 383},
    ]
    rows = {row["product_id"]: row for row in body["rows"]}
    assert (rows["apple"]["revenue"], rows["apple"]["tax"]) == (360, 60)
    assert rows["bread"]["tax_rate"] == "reduced"
    history = await shop.get("/checkouts/c-1")
    assert history.json()["checkout"]["lines"][0]["tax"] == 80
    assert history.json()["returns"][0]["lines"][0]["tax"] == 20


async def test_a_product_moved_to_another_rate_is_taxed_at_it_from_then_on(shop: Api) -> None:
    first = await _sell(shop, "c-1", {"pear": 1})
    moved = await shop.post("/catalog/pear/tax-rate", {"tax_rate": "zero"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["product"]["tax_rate"] == "zero"
    resized = await _put(shop, "/tax-rates/zero", {"basis_points": 1000})
    assert resized.status_code == 200, resized.text
    later = await _sell(shop, "c-2", {"pear": 2})
    assert [(x["tax_rate"], x["basis_points"], x["tax"]) for x in first["checkout"]["lines"]] == [
        ("standard", 2000, 13)  # 80 incl. 20 %: 13.33
    ]
    assert [(x["tax_rate"], x["basis_points"], x["tax"]) for x in later["checkout"]["lines"]] == [
        ("zero", 1000, 15)  # 160 incl. 10 %: 14.55
    ]
    report = await shop.get("/report", params={"wait_for": later["receipt"]["token"]})
    by_rate = report.json()["totals"]["by_rate"]
    assert [(x["rate"], x["basis_points"], x["tax"]) for x in by_rate] == [
        ("standard", 2000, 13),
        ("zero", 1000, 15),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "post",
            "/catalog",
            {"product_id": "kiwi", "name": "Kiwi", "price": 50, "tax_rate": "lux"},
            "tax_rate",
        ),
        ("post", "/catalog/apple/tax-rate", {"tax_rate": "lux"}, "tax_rate"),
        ("post", "/catalog/apple/tax-rate", {"tax_rate": "not a name"}, "tax_rate"),
        ("put", "/tax-rates/standard", {"basis_points": 10_001}, "basis_points"),
        ("put", "/tax-rates/standard", {"basis_points": -1}, "basis_points"),
        ("put", "/tax-rates/standard", {"basis_points": "2000"}, "basis_points"),
        ("put", "/tax-rates/standard", {"basis_points": 20.5}, "basis_points"),
        ("put", "/tax-rates/standard", {}, "basis_points"),
    ],
)
async def test_an_unknown_rate_or_a_bad_size_is_422_naming_the_field_and_writes_nothing(
    shop: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = await shop.settled_heads()
    if method == "put":
        response = await _put(shop, path, body)
    else:
        response = await shop.post(path, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert (error["field"], error["location"]) == (field, "body")
    if "lux" in str(body):
        assert "'lux'" in response.json()["detail"]
        assert "standard" in error["reason"]  # the rates the shop has
    assert await shop.settled_heads() == before
    assert (await shop.get("/catalog/apple")).json()["tax_rate"] == "standard"
    rates = (await shop.get("/tax-rates")).json()["rates"]
    assert {"rate": "standard", "basis_points": 2000} in rates
