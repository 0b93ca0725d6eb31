"""Tokens and roles over HTTP: no token, an unknown or revoked one → 401 with
``WWW-Authenticate: Bearer``; a role outside its rights → 403; checked before the body is
even parsed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role, TokenBook

PROBLEM = "application/problem+json"
CHECKOUT = {"checkout_id": "c-1", "till_id": "t", "lines": [{"product_id": "apple", "quantity": 1}]}

# (method, path, body) → the roles allowed
MATRIX: list[tuple[str, str, Any, set[Role]]] = [
    ("GET", "/catalog", None, {Role.TILL, Role.MANAGER, Role.VIEWER}),
    ("GET", "/catalog/apple", None, {Role.TILL, Role.MANAGER, Role.VIEWER}),
    ("POST", "/catalog", {"product_id": "tea", "name": "Tea", "price": 1}, {Role.MANAGER}),
    ("POST", "/catalog/apple/rename", {"name": "Apfel"}, {Role.MANAGER}),
    ("POST", "/catalog/apple/reprice", {"price": 1}, {Role.MANAGER}),
    ("POST", "/catalog/apple/tax-rate", {"tax_rate": "reduced"}, {Role.MANAGER}),
    ("GET", "/tax-rates", None, {Role.TILL, Role.MANAGER, Role.VIEWER}),
    ("PUT", "/tax-rates/standard", {"basis_points": 1900}, {Role.MANAGER}),
    ("POST", "/checkouts", CHECKOUT, {Role.TILL}),
    ("GET", "/checkouts/c-1", None, {Role.TILL, Role.MANAGER, Role.VIEWER}),
    (
        "POST",
        "/checkouts/c-1/returns",
        {"return_id": "r-1", "lines": [{"product_id": "apple", "quantity": 1}]},
        {Role.TILL},
    ),
    ("POST", "/stock/apple/deliveries", {"quantity": 1}, {Role.MANAGER}),
    ("POST", "/stock/apple/counts", {"counted": 5}, {Role.MANAGER}),
    ("GET", "/stock/apple", None, {Role.MANAGER, Role.VIEWER}),
    ("GET", "/stock/shortfalls", None, {Role.MANAGER, Role.VIEWER}),
    ("POST", "/stock/apple/reorder-point", {"reorder_point": 2}, {Role.MANAGER}),
    ("GET", "/stock/low", None, {Role.MANAGER, Role.VIEWER}),
    ("GET", "/report", None, {Role.MANAGER, Role.VIEWER}),
    ("GET", "/report/products/apple", None, {Role.MANAGER, Role.VIEWER}),
    ("GET", "/processors", None, {Role.MANAGER, Role.VIEWER}),
    ("GET", "/metrics", None, {Role.MANAGER, Role.VIEWER}),
    ("POST", "/catalog/apple/discontinue", None, {Role.MANAGER}),
]


async def call(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return await api.client.request(method, path, json=body, headers=headers)


async def test_every_route_answers_each_role_by_the_matrix(shop: Api) -> None:
    for method, path, body, allowed in MATRIX:
        for role in Role:
            response = await call(shop, method, path, body, shop.auth(role))
            if role in allowed:
                assert response.status_code < 400, (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.headers["content-type"] == PROBLEM
                problem = response.json()
                assert problem["type"] == "urn:tillflow:problem:forbidden"
                assert role.value in problem["detail"]


@pytest.mark.parametrize(
    ("headers", "invalid"),
    [
        ({}, False),
        ({"Authorization": "Bearer"}, True),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, True),
        ({"Authorization": "Bearer not-a-token"}, True),
        ({"Authorization": "Bearer " + "x" * 5000}, True),
    ],
)
async def test_missing_or_unknown_tokens_are_401_with_a_bearer_challenge(
    shop: Api, headers: dict[str, str], invalid: bool
) -> None:
    for method, path, body, _ in MATRIX:
        response = await call(shop, method, path, body, headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == PROBLEM
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        assert ('error="invalid_token"' in challenge) is invalid


async def test_the_token_is_checked_before_the_body_is_parsed(shop: Api) -> None:
    response = await shop.client.post(
        "/checkouts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    wrong_role = await shop.client.post(
        "/checkouts",
        content=b"{not json",
        headers={**shop.auth(Role.VIEWER), "Content-Type": "application/json"},
    )
    assert wrong_role.status_code == 403


async def test_a_revoked_token_stops_working_at_its_next_request(shop: Api) -> None:
    assert (await shop.get("/report")).status_code == 200
    TokenBook(shop.store).revoke("viewer-1")  # as `tillflow token revoke` would, elsewhere
    response = await shop.get("/report")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    replacement, _ = TokenBook(shop.store).create("viewer-1", Role.VIEWER)
    assert (await shop.get("/report", role=replacement)).status_code == 200


async def test_health_docs_and_the_openapi_document_need_no_token(api: Api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    assert (await api.client.get("/docs")).status_code == 200
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "Problem" in schema["components"]["schemas"]
