"""Barcodes over HTTP: products carry GTINs (unique, check digit checked), tills ring up by
GTIN on both checkout paths, managers import a CSV catalog (all or nothing, by line)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role
from tillflow.shop.sale.events import CATALOG_STREAM
from tillflow.shop.sale.gtin import check_digit

PEN = "4006381333931"
SODA = "036000291452"
GUM = "73513537"


async def _csv(
    api: Api, text: str, role: Role = Role.MANAGER, content_type: str = "text/csv; charset=utf-8"
) -> httpx.Response:
    sent = {**api.auth(role), "Content-Type": content_type}
    return await api.client.post("/catalog-import", content=text.encode(), headers=sent)


@pytest.fixture
async def barcoded(shop: Api) -> Api:
    """``shop`` with a pen (EAN-13) and a soda (UPC-A) carrying GTINs."""
    for product_id, name, price, gtin in (("pen", "Pen", 150, PEN), ("soda", "Soda", 99, SODA)):
        added = await shop.post(
            "/catalog", {"product_id": product_id, "name": name, "price": price, "gtin": gtin}
        )
        assert added.status_code == 201, added.text
    return shop


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_a_product_shows_its_gtin_and_is_found_by_any_form_of_it(barcoded: Api) -> None:
    found = await barcoded.get(f"/catalog/by-gtin/0{SODA}", role=Role.TILL)  # as an EAN-13
    assert found.status_code == 200, found.text
    assert found.json()["product_id"] == "soda"
    assert found.json()["gtin"] == "00036000291452"
    apple = await barcoded.get("/catalog/apple")
    assert apple.json()["gtin"] is None
    missing = await barcoded.get(f"/catalog/by-gtin/{GUM}")
    assert missing.status_code == 404
    assert _problem(missing)["type"] == "urn:tillflow:problem:unknown-gtin"
    assert missing.json()["errors"][0]["location"] == "path"
    wrong = await barcoded.get("/catalog/by-gtin/73513538")
    assert wrong.status_code == 422


async def test_a_duplicate_gtin_is_409_naming_it_and_nothing_is_written(barcoded: Api) -> None:
    before = barcoded.store.stream_version(CATALOG_STREAM)
    again = await barcoded.post(
        "/catalog", {"product_id": "cola", "name": "Cola", "price": 120, "gtin": f"0{SODA}"}
    )
    assert again.status_code == 409
    assert _problem(again)["type"] == "urn:tillflow:problem:duplicate-gtin"
    assert again.json()["errors"] == [
        {"field": "gtin", "reason": "product 'soda' carries it", "location": "body"}
    ]
    moved = await barcoded.post("/catalog/apple/gtin", {"gtin": PEN})
    assert moved.status_code == 409
    assert barcoded.store.stream_version(CATALOG_STREAM) == before


async def test_a_wrong_check_digit_is_422_naming_the_field(barcoded: Api) -> None:
    before = barcoded.store.stream_version(CATALOG_STREAM)
    bad = await barcoded.post(
        "/catalog", {"product_id": "ink", "name": "Ink", "price": 1, "gtin": "4006381333932"}
    )
    assert bad.status_code == 422
    [error] = _problem(bad)["errors"]
    assert error["field"] == "gtin"
    assert error["reason"] == "wrong EAN-13 check digit: expected 1"
    assert barcoded.store.stream_version(CATALOG_STREAM) == before


async def test_a_manager_sets_moves_and_removes_a_gtin(barcoded: Api) -> None:
    cleared = await barcoded.post("/catalog/pen/gtin", {"gtin": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["product"]["gtin"] is None
    given = await barcoded.post("/catalog/apple/gtin", {"gtin": PEN})
    assert given.json()["product"]["gtin"] == "04006381333931"
    assert (
        await barcoded.post("/catalog/apple/gtin", {"gtin": PEN}, role=Role.TILL)
    ).status_code == 403


@pytest.mark.parametrize("header", [False, True])  # the fast path, the route
async def test_a_till_rings_up_by_barcode(barcoded: Api, header: bool) -> None:
    body: dict[str, Any] = {
        "till_id": "till-1",
        "lines": [{"gtin": PEN, "quantity": 2}, {"product_id": "pen", "quantity": 1}],
    }
    headers = {"Idempotency-Key": "c-1"} if header else {}
    if not header:
        body["checkout_id"] = "c-1"
    first = await barcoded.post("/checkouts", body, role=Role.TILL, headers=headers)
    assert first.status_code == 201, first.text
    [line] = first.json()["checkout"]["lines"]
    assert (line["product_id"], line["quantity"], line["gtin"]) == ("pen", 3, "04006381333931")
    retried = await barcoded.post("/checkouts", body, role=Role.TILL, headers=headers)
    assert retried.json() == first.json()


@pytest.mark.parametrize(
    ("line", "status", "kind", "field"),
    [
        ({"gtin": PEN, "product_id": "pen", "quantity": 1}, 422, "invalid-field", "lines[1]"),
        ({"quantity": 1}, 422, "invalid-field", "lines[1].product_id"),
        ({"gtin": GUM, "quantity": 1}, 422, "unknown-gtin", "lines[1].gtin"),
        ({"gtin": "73513538", "quantity": 1}, 422, "invalid-field", "lines[1].gtin"),
        ({"gtin": 73513537, "quantity": 1}, 422, "invalid-field", "lines[1].gtin"),
    ],
)
async def test_a_bad_barcode_line_is_refused_naming_it(
    barcoded: Api, line: dict[str, Any], status: int, kind: str, field: str
) -> None:
    before = await barcoded.settled_heads()
    body = {
        "checkout_id": "c-9",
        "till_id": "till-1",
        "lines": [{"gtin": SODA, "quantity": 1}, line],
    }
    refused = await barcoded.post("/checkouts", body, role=Role.TILL)
    assert refused.status_code == status, refused.text
    problem = _problem(refused)
    assert problem["type"] == f"urn:tillflow:problem:{kind}"
    assert [error["field"] for error in problem["errors"]] == [field]
    assert await barcoded.settled_heads() == before


async def test_a_catalog_file_imports_and_a_second_upload_writes_nothing(barcoded: Api) -> None:
    text = (
        "product_id,name,price,gtin\n"
        f"gum,Gum,50,{GUM}\n"
        "apple,Apple,125,\n"  # repriced
        f"pen,Ballpoint pen,150,{PEN}\n"  # renamed
    )
    first = await _csv(barcoded, text)
    assert first.status_code == 200, first.text
    body = first.json()
    assert {key: body[key] for key in ("added", "renamed", "repriced", "gtins_changed")} == {
        "added": 1,
        "renamed": 1,
        "repriced": 1,
        "gtins_changed": 0,
    }
    assert body["receipt"]["streams"] == {CATALOG_STREAM: body["version"]}
    gum = await barcoded.get(f"/catalog/by-gtin/{GUM}")
    assert gum.json()["name"] == "Gum"
    heads = await barcoded.settled_heads()
    again = await _csv(barcoded, text)
    assert again.status_code == 200
    assert again.json()["receipt"] is None
    assert again.json()["unchanged"] == 3
    assert await barcoded.settled_heads() == heads


async def test_a_file_with_bad_rows_is_422_naming_each_line_and_imports_nothing(
    barcoded: Api,
) -> None:
    heads = await barcoded.settled_heads()
    text = (
        "product_id,name,price,gtin\n"
        "gum,Gum,50,73513538\n"  # 2
        "tea,Tea,1.50,\n"  # 3
        "mint,Mint,80\n"  # 4
        f"cola,Cola,120,{SODA}\n"  # 5
        "fine,Fine,1,\n"
    )
    refused = await _csv(barcoded, text)
    assert refused.status_code == 422, refused.text
    problem = _problem(refused)
    assert problem["type"] == "urn:tillflow:problem:invalid-catalog"
    assert [(e["line"], e["field"]) for e in problem["errors"]] == [
        (2, "gtin"),
        (3, "price"),
        (4, "row"),
        (5, "gtin"),
    ]
    assert problem["detail"].startswith("4 bad field(s), nothing imported: line 2: gtin:")
    assert await barcoded.settled_heads() == heads


async def test_an_import_needs_a_manager_and_a_csv_body(barcoded: Api) -> None:
    text = "product_id,name,price\ngum,Gum,50\n"
    assert (await _csv(barcoded, text, role=Role.TILL)).status_code == 403
    as_json = await _csv(barcoded, text, content_type="application/json")
    assert as_json.status_code == 415
    assert _problem(as_json)["type"] == "urn:tillflow:problem:unsupported-media-type"
    empty = await _csv(barcoded, "")
    assert empty.status_code == 422
    assert _problem(empty)["errors"] == [
        {"field": "file", "reason": "empty: no header row", "location": "body", "line": 1}
    ]


async def test_a_ten_thousand_row_file_is_over_the_json_limit_and_imports(api: Api) -> None:
    lines = ["product_id,name,price,gtin\n"]
    for number in range(10_000):
        body = f"{300_000_000_000 + number:012d}"
        lines.append(
            f"p-{number},Product number {number},{100 + number},{body}{check_digit(body)}\n"
        )
    text = "".join(lines)
    assert len(text) > 64 * 1024
    imported = await _csv(api, text)
    assert imported.status_code == 200, imported.text
    assert imported.json()["added"] == 10_000
    listed = await api.get("/catalog")
    assert len(listed.json()["products"]) == 10_000
    too_big = await api.post("/catalog", {"product_id": "x", "name": "x" * 70_000, "price": 1})
    assert too_big.status_code == 413  # other routes keep the JSON limit
