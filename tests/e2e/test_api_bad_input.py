"""Bad input, class by class: each answer is a precise 4xx problem document naming the
field and the reason, and nothing is written (the settled heads do not move)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role

JSON = {"Content-Type": "application/json"}
PROBLEM = "application/problem+json"


def line(product_id: Any = "apple", quantity: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"product_id": product_id, "quantity": quantity, **extra}


def checkout(**changes: Any) -> dict[str, Any]:
    return {"checkout_id": "c-1", "till_id": "till-1", "lines": [line()], **changes}


async def refused(
    api: Api, path: str, raw: bytes, role: Role, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``raw``; assert a 4xx problem document and that nothing was written."""
    before = await api.settled_heads()
    response = await api.client.post(
        path, content=raw, headers={**api.auth(role), **(headers or JSON)}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    assert problem["type"].startswith("urn:tillflow:problem:")
    assert problem["title"] and problem["detail"]
    assert await api.settled_heads() == before
    return problem


def fields(problem: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["reason"] for error in problem["errors"]}


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"checkout_id": "c-1",}', b"not json", b'{"a": 1} trailing', b"\xff\xfe{}"],
)
async def test_malformed_json_is_400(shop: Api, raw: bytes) -> None:
    problem = await refused(shop, "/checkouts", raw, Role.TILL)
    assert problem["status"] == 400
    assert problem["type"] == "urn:tillflow:problem:malformed-json"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (checkout(till_id=7), "till_id", "must be a string"),
        (checkout(lines=[line(quantity="5")]), "lines[0].quantity", "must be a whole number"),
        (checkout(lines=[line(quantity=5.0)]), "lines[0].quantity", "must be a whole number"),
        (checkout(lines=[line(quantity=True)]), "lines[0].quantity", "must be a whole number"),
        (checkout(lines=[line(quantity=None)]), "lines[0].quantity", "must be a whole number"),
        (checkout(lines={"apple": 1}), "lines", "must be a list"),
        (checkout(lines=["apple"]), "lines[0]", "must be an object"),
        (checkout(at=1700000000), "at", "ISO 8601"),
        (checkout(at="2026-05-01T12:00:00"), "at", "time zone"),
        (checkout(at="yesterday"), "at", "datetime"),
        (checkout(at="0001-01-01T00:00:00+01:00"), "at", "out of range"),
    ],
)
async def test_wrong_types_are_422_naming_the_field(
    shop: Api, body: dict[str, Any], field: str, reason: str
) -> None:
    problem = await refused(shop, "/checkouts", json.dumps(body).encode(), Role.TILL)
    assert problem["status"] == 422
    assert reason.lower() in fields(problem)[field].lower()


async def test_a_body_that_is_not_an_object_is_422(shop: Api) -> None:
    problem = await refused(shop, "/checkouts", b"[1, 2]", Role.TILL)
    assert problem["status"] == 422
    assert problem["errors"][0]["location"] == "body"


@pytest.mark.parametrize(
    ("path", "body", "missing"),
    [
        ("/checkouts", {"checkout_id": "c-1", "lines": [line()]}, "till_id"),
        ("/checkouts", {"checkout_id": "c-1", "till_id": "t"}, "lines"),
        ("/checkouts", checkout(lines=[{"product_id": "apple"}]), "lines[0].quantity"),
        ("/catalog", {"product_id": "tea", "name": "Tea"}, "price"),
        ("/stock/apple/deliveries", {}, "quantity"),
    ],
)
async def test_missing_fields_are_422_required(
    shop: Api, path: str, body: dict[str, Any], missing: str
) -> None:
    role = Role.TILL if path == "/checkouts" else Role.MANAGER
    problem = await refused(shop, path, json.dumps(body).encode(), role)
    assert fields(problem) == {missing: "required"}


async def test_an_empty_body_is_422_and_a_non_json_body_415(shop: Api) -> None:
    empty = await refused(shop, "/checkouts", b"", Role.TILL)
    assert (empty["status"], fields(empty)) == (422, {"body": "required"})
    text = await refused(
        shop,
        "/checkouts",
        json.dumps(checkout()).encode(),
        Role.TILL,
        {"Content-Type": "text/plain"},
    )
    assert text["status"] == 415
    assert text["errors"][0]["field"] == "Content-Type"


@pytest.mark.parametrize(
    ("body", "unknown"),
    [
        (checkout(discount=10), "discount"),
        (checkout(lines=[line(price=1)]), "lines[0].price"),
        (checkout(Till_Id="t"), "Till_Id"),
    ],
)
async def test_unknown_fields_are_refused(shop: Api, body: dict[str, Any], unknown: str) -> None:
    problem = await refused(shop, "/checkouts", json.dumps(body).encode(), Role.TILL)
    assert fields(problem)[unknown] == "unknown field (not accepted)"


async def chunks(size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * 4096
        sent += 4096


async def test_huge_bodies_are_413_whether_announced_or_streamed(shop: Api) -> None:
    huge = json.dumps(checkout(till_id="t" * 70_000)).encode()
    announced = await refused(shop, "/checkouts", huge, Role.TILL)
    assert announced["status"] == 413
    assert announced["type"] == "urn:tillflow:problem:body-too-large"
    before = await shop.settled_heads()
    streamed = await shop.client.post(
        "/checkouts", content=chunks(1_000_000), headers={**shop.auth(Role.TILL), **JSON}
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == PROBLEM
    assert await shop.settled_heads() == before
    just_fits = json.dumps(checkout(till_id="t" * 60_000)).encode()
    assert (await refused(shop, "/checkouts", just_fits, Role.TILL))["status"] == 422


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/catalog", b'{"product_id": "t", "name": "T", "price": 100000000000000000000}', "price"),
        ("/catalog", b'{"product_id": "t", "name": "T", "price": -1}', "price"),
        ("/catalog", b'{"product_id": "t", "name": "T", "price": 1e400}', "price"),
        ("/stock/apple/deliveries", b'{"quantity": 1000001}', "quantity"),
        ("/stock/apple/counts", b'{"counted": 18446744073709551617}', "counted"),
    ],
)
async def test_huge_or_impossible_numbers_are_422(
    shop: Api, path: str, raw: bytes, field: str
) -> None:
    problem = await refused(shop, path, raw, Role.MANAGER)
    assert problem["status"] == 422
    assert field in fields(problem)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
async def test_nan_and_infinity_are_malformed_json_400(shop: Api, constant: bytes) -> None:
    raw = b'{"product_id": "t", "name": "T", "price": ' + constant + b"}"
    problem = await refused(shop, "/catalog", raw, Role.MANAGER)
    assert (problem["status"], problem["type"]) == (400, "urn:tillflow:problem:malformed-json")


async def test_a_number_too_long_to_parse_is_400(shop: Api) -> None:
    raw = b'{"product_id": "t", "name": "T", "price": ' + b"9" * 5000 + b"}"
    problem = await refused(shop, "/catalog", raw, Role.MANAGER)
    assert problem["status"] == 400


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must be 1..200 characters"),
        ("   \t ", "must be 1..200 characters"),
        ("x" * 201, "must be 1..200 characters"),
        ("Milk\u0000", "control"),
        ("Milk\n2", "control"),
        ("\ud800 lone surrogate", "control"),
        ("unassigned \u0378", "control"),
        ("private \ue000", "control"),
    ],
)
async def test_names_with_unicode_traps_are_422_naming_the_field(
    shop: Api, name: str, reason: str
) -> None:
    body = json.dumps({"product_id": "tea", "name": name, "price": 1}).encode()  # \\u escapes
    problem = await refused(shop, "/catalog", body, Role.MANAGER)
    assert problem["status"] == 422
    assert reason in fields(problem)["name"]


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("Cafe\u0301", "Caf\u00e9"),  # NFC
        ("  Crème brûlée  ", "Crème brûlée"),
        ("חלב", "חלב"),  # right to left
        ("🍎 Äpfel 🍏", "🍎 Äpfel 🍏"),
        ("x" * 200, "x" * 200),
    ],
)
async def test_names_in_any_script_are_kept_normalised(shop: Api, name: str, stored: str) -> None:
    added = await shop.post("/catalog", {"product_id": "tea", "name": name, "price": 1})
    assert added.status_code == 201, added.text
    assert added.json()["product"]["name"] == stored


@pytest.mark.parametrize(
    "product_id", ["äpfel", "a b", "-a", "a/b", "x" * 101, "apple\u200b", "١٢٣"]
)
async def test_ids_outside_the_safe_alphabet_are_422(shop: Api, product_id: str) -> None:
    body = json.dumps({"product_id": product_id, "name": "X", "price": 1}).encode()
    problem = await refused(shop, "/catalog", body, Role.MANAGER)
    assert "product_id" in fields(problem)


async def test_an_id_outside_the_alphabet_in_the_path_is_422_naming_the_path(shop: Api) -> None:
    response = await shop.post("/stock/%C3%A4pfel/deliveries", {"quantity": 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "path"


async def test_unknown_routes_are_404_and_wrong_methods_405_as_problems(shop: Api) -> None:
    nowhere = await shop.get("/nowhere")
    assert (nowhere.status_code, nowhere.headers["content-type"]) == (404, PROBLEM)
    wrong = await shop.client.delete("/catalog", headers=shop.auth(Role.MANAGER))
    assert (wrong.status_code, wrong.headers["content-type"]) == (405, PROBLEM)
    assert wrong.headers["allow"] == "GET, POST"
    assert wrong.json()["type"] == "urn:tillflow:problem:method-not-allowed"
