"""Catalog over HTTP: managers add, rename, reprice and discontinue; anyone with a token
lists. Each change answers with the product as it is now and a receipt."""

from __future__ import annotations

from tests.e2e.servers import Api
from tillflow.service.access_tokens import Role


async def test_a_manager_adds_renames_reprices_and_discontinues_a_product(api: Api) -> None:
    added = await api.post("/catalog", {"product_id": "tea", "name": "Tea", "price": 250})
    assert added.status_code == 201
    assert added.json()["product"] == {
        "product_id": "tea",
        "name": "Tea",
        "price": 250,
        "tax_rate": "standard",
        "discontinued": False,
        "gtin": None,
    }
    assert added.json()["receipt"]["streams"] == {"catalog": 1}
    renamed = await api.post("/catalog/tea/rename", {"name": "  Green tea  "})
    assert renamed.status_code == 200
    assert renamed.json()["product"]["name"] == "Green tea"
    repriced = await api.post("/catalog/tea/reprice", {"price": 275})
    assert repriced.json()["product"]["price"] == 275
    gone = await api.post("/catalog/tea/discontinue")
    assert gone.status_code == 200
    assert gone.json()["product"]["discontinued"] is True
    assert gone.json()["receipt"]["streams"] == {"catalog": 4}

    listed = await api.get("/catalog", role=Role.TILL)
    assert listed.status_code == 200
    assert listed.json() == {
        "version": 4,
        "products": [
            {
                "product_id": "tea",
                "name": "Green tea",
                "price": 275,
                "tax_rate": "standard",
                "discontinued": True,
                "gtin": None,
            }
        ],
    }
    one = await api.get("/catalog/tea", role=Role.VIEWER)
    assert one.json()["name"] == "Green tea"


async def test_adding_a_product_twice_is_a_conflict_naming_the_product(shop: Api) -> None:
    again = await shop.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 1})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["type"] == "urn:tillflow:problem:product-exists"
    assert problem["errors"] == [
        {"field": "product_id", "reason": "already in the catalog", "location": "body"}
    ]


async def test_changing_an_unknown_product_is_404_and_a_discontinued_one_409(shop: Api) -> None:
    missing = await shop.post("/catalog/kiwi/rename", {"name": "Kiwi"})
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:tillflow:problem:unknown-product"
    assert missing.json()["errors"][0]["location"] == "path"
    assert (await shop.get("/catalog/kiwi")).status_code == 404
    assert (await shop.post("/catalog/pear/discontinue")).status_code == 200
    again = await shop.post("/catalog/pear/reprice", {"price": 1})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:tillflow:problem:product-discontinued"
