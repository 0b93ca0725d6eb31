"""Every route that takes a body answers the same for a body that is not JSON's, with the
checkout fast path and without: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's
``json`` would read as floats) are malformed JSON, 400; an empty body is 422 naming
``body`` as required. Nothing is written either way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Api, served
from tillflow.service.access_tokens import Role

# a valid body per route; each test spoils one value of it
BODIES: dict[tuple[str, str], tuple[Role, dict[str, Any]]] = {
    ("/catalog", "POST"): (Role.MANAGER, {"product_id": "tea", "name": "Tea", "price": 5}),
    ("/catalog/{product_id}/rename", "POST"): (Role.MANAGER, {"name": "Green apple"}),
    ("/catalog/{product_id}/reprice", "POST"): (Role.MANAGER, {"price": 130}),
    ("/catalog/{product_id}/gtin", "POST"): (Role.MANAGER, {"gtin": "4006381333931"}),
    ("/catalog/{product_id}/tax-rate", "POST"): (Role.MANAGER, {"tax_rate": "reduced"}),
    ("/tax-rates/{rate}", "PUT"): (Role.MANAGER, {"basis_points": 1900}),
    ("/checkouts", "POST"): (
        Role.TILL,
        {
            "checkout_id": "c-2",
            "till_id": "till-1",
            "lines": [{"product_id": "apple", "quantity": 1}],
        },
    ),
    ("/checkouts/{checkout_id}/returns", "POST"): (
        Role.TILL,
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
    ),
    ("/stock/{product_id}/deliveries", "POST"): (Role.MANAGER, {"quantity": 5}),
    ("/stock/{product_id}/counts", "POST"): (Role.MANAGER, {"counted": 5}),
    ("/stock/{product_id}/reorder-point", "POST"): (Role.MANAGER, {"reorder_point": 5}),
    ("/tills/{till_id}/open", "POST"): (Role.MANAGER, {"float": 5000}),
    ("/tills/{till_id}/close", "POST"): (Role.MANAGER, {"counted": 5000}),
    ("/dead-letters/{dead_letter_id}/retry", "POST"): (Role.MANAGER, {"reason": "fixed"}),
    ("/dead-letters/{dead_letter_id}/skip", "POST"): (Role.MANAGER, {"reason": "test sale"}),
}
DEAD_LETTER = "inventory:00000000-0000-0000-0000-000000000000"
METHODS = {path: method for path, method in BODIES}
CONSTANTS = ["NaN", "Infinity", "-Infinity"]


@pytest.fixture(params=[True, False], ids=["fast", "route"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """An app with the checkout fast path, or without; apple in the catalog, checkout c-1."""
    async with served(tmp_path / "shop.db", fast_checkouts=request.param) as api:
        added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 1})
        assert added.status_code == 201, added.text
        checkout = BODIES["/checkouts", "POST"][1]
        sold = await api.post("/checkouts", {**checkout, "checkout_id": "c-1"}, Role.TILL)
        assert sold.status_code == 201, sold.text
        yield api


def test_every_route_that_takes_a_body_is_covered(shop: Api) -> None:
    taking = {
        (path, method.upper())
        for path, operations in shop.app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }
    assert taking == set(BODIES)


async def _send(shop: Api, template: str, raw: bytes) -> httpx.Response:
    method = METHODS[template]
    role = BODIES[template, method][0]
    path = template.format(
        product_id="apple",
        checkout_id="c-1",
        rate="standard",
        till_id="till-1",
        dead_letter_id=DEAD_LETTER,
    )
    before = await shop.settled_heads()
    headers = {**shop.auth(role), "Content-Type": "application/json"}
    response = await shop.client.request(method, path, content=raw, headers=headers)
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert await shop.settled_heads() == before, "a refused request wrote something"
    return response


def _with_constant(body: dict[str, Any], constant: str) -> bytes:
    """``body`` with the value of its last field written as ``constant``."""
    spot = "@@spot@@"
    text = json.dumps({**body, list(body)[-1]: spot})
    return text.replace(f'"{spot}"', constant).encode()


@pytest.mark.parametrize("constant", CONSTANTS)
@pytest.mark.parametrize("template", sorted(path for path, _ in BODIES))
async def test_nan_or_infinity_in_a_body_is_malformed_json(
    shop: Api, template: str, constant: str
) -> None:
    raw = _with_constant(BODIES[template, METHODS[template]][1], constant)
    response = await _send(shop, template, raw)
    problem = response.json()
    assert (response.status_code, problem["type"]) == (400, "urn:tillflow:problem:malformed-json")
    position = raw.decode().index(constant)
    assert problem["detail"] == (
        f"the body is not valid JSON: {constant} is not JSON (JSON has no NaN or infinity) "
        f"at character {position}"
    )
    assert problem["errors"] == [
        {
            "field": "body",
            "location": "body",
            "reason": f"{constant} is not JSON (JSON has no NaN or infinity)",
        }
    ]


async def test_the_words_nan_and_infinity_inside_strings_are_plain_text(shop: Api) -> None:
    raw = b'{"product_id": "tea", "name": "NaN \\" Infinity -Infinity", "price": 5}'
    response = await shop.client.post(
        "/catalog",
        content=raw,
        headers={**shop.auth(Role.MANAGER), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["product"]["name"] == 'NaN " Infinity -Infinity'


@pytest.mark.parametrize("template", sorted(path for path, _ in BODIES))
async def test_an_empty_body_is_422_naming_the_body_as_required(shop: Api, template: str) -> None:
    response = await _send(shop, template, b"")
    problem = response.json()
    assert (response.status_code, problem["type"]) == (422, "urn:tillflow:problem:invalid-field")
    assert problem["errors"] == [{"field": "body", "location": "body", "reason": "required"}]


@pytest.mark.parametrize("template", sorted(path for path, _ in BODIES))
async def test_a_body_of_whitespace_only_is_malformed_json(shop: Api, template: str) -> None:
    response = await _send(shop, template, b" \n")
    assert (response.status_code, response.json()["type"]) == (
        400,
        "urn:tillflow:problem:malformed-json",
    )
