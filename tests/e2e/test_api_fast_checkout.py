"""The plain ``POST /checkouts`` answered without the framework (``CheckoutFastPath``)
gives exactly the answers of the FastAPI route: the same request to an app with the fast
path and to one without, over identical stores, gets the same status, media type and
body; everything but the plain case is left to the route; and what the fast path takes for
plain the route's own model accepts as the same checkout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.responses import Response

from tillflow.engine import SqliteEventStore
from tillflow.http import create_app, fast_checkout
from tillflow.http.checkouts import CheckoutIn, CheckoutRecorded, checkout_command, ring_up
from tillflow.http.fast_checkout import plain_checkout
from tillflow.http.services import Services
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.sale.commands import Checkout

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMIT = 4096
PLAIN = {
    "checkout_id": "c-1",
    "till_id": "till-1",
    "lines": [{"product_id": "apple", "quantity": 2}, {"product_id": "pear", "quantity": 1}],
}


def _clock() -> datetime:
    return NOW


class Twin:
    """One app: its client and its tokens by role (plus a revoked till token)."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.app = app
        self.client = client
        self.tokens = tokens

    async def send(
        self, body: bytes, role: str | None, headers: dict[str, str], query: str
    ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        if role is not None:
            sent["Authorization"] = f"Bearer {self.tokens[role]}"
        return await self.client.post(f"/checkouts{query}", content=body, headers=sent)


async def _twin(path: Path, fast: bool) -> AsyncIterator[Twin]:
    with SqliteEventStore(path, registry=service_registry(), durability="off") as store:
        book = TokenBook(store)
        tokens = {role.value: book.create(f"{role.value}-1", role)[0] for role in Role}
        tokens["revoked"] = book.create("leaver", Role.TILL)[0]
        book.revoke("leaver")
        tokens["unknown"] = "not-a-token"
        app = create_app(
            store=store, clock=_clock, run_processors=False, body_limit=LIMIT, fast_checkouts=fast
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://tillflow.test"
            ) as client,
        ):
            manager = {"Authorization": f"Bearer {tokens['manager']}"}
            for product_id, name, price in (
                ("apple", "Äpfel", 120),
                ("pear", "Pear", 80),
                ("gone", "Gone", 10),
            ):
                added = await client.post(
                    "/catalog",
                    json={"product_id": product_id, "name": name, "price": price},
                    headers=manager,
                )
                assert added.status_code == 201, added.text
            gone = await client.post("/catalog/gone/discontinue", headers=manager)
            assert gone.status_code == 200, gone.text
            yield Twin(app, client, tokens)


@pytest.fixture
async def twins(tmp_path: Path) -> AsyncIterator[tuple[Twin, Twin]]:
    fast_app = _twin(tmp_path / "fast.db", fast=True)
    route_app = _twin(tmp_path / "route.db", fast=False)
    fast, route = await anext(fast_app), await anext(route_app)
    yield fast, route
    for left in (fast_app, route_app):
        with pytest.raises(StopAsyncIteration):
            await anext(left)


def body(**changes: Any) -> bytes:
    drop = [key for key, value in changes.items() if value is ...]
    merged = {key: value for key, value in {**PLAIN, **changes}.items() if key not in drop}
    return json.dumps(merged).encode()


def line(product_id: object = "apple", quantity: object = 1) -> dict[str, object]:
    return {"product_id": product_id, "quantity": quantity}


def cash(amount: object) -> dict[str, object]:
    return {"type": "cash", "amount": amount}


def card(amount: object) -> dict[str, object]:
    return {"type": "card", "amount": amount, "card": "tok-1"}


# (name, body, role, extra headers, query string); sent in this order to both apps
REQUESTS: list[tuple[str, bytes, str | None, dict[str, str], str]] = [
    ("plain", body(), "till", {}, ""),
    ("the same again", body(), "till", {}, ""),
    ("the same id, another till", body(till_id="till-2"), "till", {}, ""),
    ("the same id, other lines", body(lines=[line(quantity=3)]), "till", {}, ""),
    ("one product on two lines", body(checkout_id="c-2", lines=[line(), line()]), "till", {}, ""),
    ("unknown product", body(checkout_id="c-3", lines=[line("kiwi")]), "till", {}, ""),
    ("discontinued product", body(checkout_id="c-4", lines=[line("gone")]), "till", {}, ""),
    ("at null", body(checkout_id="c-5", at=None), "till", {}, ""),
    ("at given", body(checkout_id="c-6", at="2026-05-01T14:00:00+02:00"), "till", {}, ""),
    ("at bad", body(checkout_id="c-7", at="yesterday"), "till", {}, ""),
    ("no checkout id", body(checkout_id=...), "till", {}, ""),
    ("header key", body(checkout_id=...), "till", {"Idempotency-Key": "k-1"}, ""),
    ("header and body keys differ", body(checkout_id="c-8"), "till", {"Idempotency-Key": "k"}, ""),
    ("quantity 0", body(checkout_id="c-9", lines=[line(quantity=0)]), "till", {}, ""),
    ("quantity too big", body(checkout_id="c-9", lines=[line(quantity=10_001)]), "till", {}, ""),
    ("quantity 2.0", body(checkout_id="c-9", lines=[line(quantity=2.0)]), "till", {}, ""),
    ("quantity '2'", body(checkout_id="c-9", lines=[line(quantity="2")]), "till", {}, ""),
    ("quantity true", body(checkout_id="c-9", lines=[line(quantity=True)]), "till", {}, ""),
    ("no lines", body(checkout_id="c-9", lines=[]), "till", {}, ""),
    ("101 lines", body(checkout_id="c-9", lines=[line()] * 101), "till", {}, ""),
    ("unknown field", body(checkout_id="c-9", coupon="x"), "till", {}, ""),
    ("unknown line field", body(lines=[{**line(), "x": 1}]), "till", {}, ""),
    ("bad id", body(checkout_id="c 9"), "till", {}, ""),
    ("unicode id", body(checkout_id="ç-9"), "till", {}, ""),
    ("long id", body(checkout_id="c" * 101), "till", {}, ""),
    ("till id not a string", body(checkout_id="c-9", till_id=7), "till", {}, ""),
    ("malformed JSON", b'{"checkout_id": "c-9",', "till", {}, ""),
    ("not an object", b"[1, 2]", "till", {}, ""),
    ("NaN", body(checkout_id="c-9", lines=[line(quantity=float("nan"))]), "till", {}, ""),
    ("Infinity", body(checkout_id="c-9", lines=[line(quantity=float("inf"))]), "till", {}, ""),
    ("-Infinity", body(checkout_id="c-9", lines=[line(quantity=-float("inf"))]), "till", {}, ""),
    ("NaN, unknown field", body(checkout_id="c-9", coupon=float("nan")), "till", {}, ""),
    ("empty", b"", "till", {}, ""),
    ("whitespace", b" \n", "till", {}, ""),
    ("1e400", body(checkout_id="c-9", lines=[line(quantity=1e400)]), "till", {}, ""),
    ("huge number", b'{"quantity": ' + b"9" * 5000 + b"}", "till", {}, ""),
    ("over the limit", body(checkout_id="c-9", till_id="t" * LIMIT), "till", {}, ""),
    ("no token", body(checkout_id="c-10"), None, {}, ""),
    ("unknown token", body(checkout_id="c-10"), "unknown", {}, ""),
    ("revoked token", body(checkout_id="c-10"), "revoked", {}, ""),
    ("viewer token", body(checkout_id="c-10"), "viewer", {}, ""),
    ("manager token", body(checkout_id="c-10"), "manager", {}, ""),
    ("basic auth", body(checkout_id="c-10"), None, {"Authorization": "Basic eDp5"}, ""),
    ("query string", body(checkout_id="c-10"), "till", {}, "?x=1"),
    ("text/plain", body(checkout_id="c-10"), "till", {"Content-Type": "text/plain"}, ""),
    ("charset", body(checkout_id="c-11"), "till", {"Content-Type": "application/json; x=1"}, ""),
    ("plain, second", body(checkout_id="c-12", lines=[line("pear", 4)]), "till", {}, ""),
    # tenders: the same rules on both paths (each app's own simulated terminal, in step)
    ("exact cash asked", body(tenders=[cash(320)]), "till", {}, ""),
    ("the same id, other tenders", body(tenders=[cash(500)]), "till", {}, ""),
    ("cash with change", body(checkout_id="c-30", tenders=[cash(1000)]), "till", {}, ""),
    ("card", body(checkout_id="c-31", tenders=[card(320)]), "till", {}, ""),
    ("card again", body(checkout_id="c-31", tenders=[card(320)]), "till", {}, ""),
    ("split", body(checkout_id="c-32", tenders=[card(20), cash(500)]), "till", {}, ""),
    ("cash short", body(checkout_id="c-33", tenders=[cash(319)]), "till", {}, ""),
    ("card short", body(checkout_id="c-33", tenders=[card(319)]), "till", {}, ""),
    ("cash negative", body(checkout_id="c-33", tenders=[cash(-1)]), "till", {}, ""),
    ("cash 3.5", body(checkout_id="c-33", tenders=[cash(3.5)]), "till", {}, ""),
    (
        "cash with a card",
        body(checkout_id="c-33", tenders=[{**cash(320), "card": "t"}]),
        "till",
        {},
        "",
    ),
    (
        "card without one",
        body(checkout_id="c-33", tenders=[{"type": "card", "amount": 320}]),
        "till",
        {},
        "",
    ),
    (
        "card, unknown field",
        body(checkout_id="c-33", tenders=[{**card(320), "handed": 1}]),
        "till",
        {},
        "",
    ),
    ("two cash tenders", body(checkout_id="c-33", tenders=[cash(300), cash(300)]), "till", {}, ""),
    (
        "three tenders",
        body(checkout_id="c-33", tenders=[card(1), card(1), cash(1)]),
        "till",
        {},
        "",
    ),
    ("no tenders", body(checkout_id="c-33", tenders=[]), "till", {}, ""),
    ("tenders null", body(checkout_id="c-34", tenders=None), "till", {}, ""),
    (
        "cheque",
        body(checkout_id="c-35", tenders=[{"type": "cheque", "amount": 320}]),
        "till",
        {},
        "",
    ),
    # where pydantic's JSON parser and Python's could differ: the same answers regardless
    (
        "a key twice: the last wins",
        body(checkout_id="c-13")[:-1] + b', "till_id": "t-2"}',
        "till",
        {},
        "",
    ),
    ("a byte order mark", b"\xef\xbb\xbf" + body(checkout_id="c-14"), "till", {}, ""),
    ("at with a space", body(checkout_id="c-15", at="2026-05-01 14:00:00+02:00"), "till", {}, ""),
    ("at as a number", body(checkout_id="c-16", at=1746100800), "till", {}, ""),
]


async def test_the_fast_path_answers_every_request_as_the_route_does(
    twins: tuple[Twin, Twin],
) -> None:
    fast, route = twins
    for name, sent, role, headers, query in REQUESTS:
        ours = await fast.send(sent, role, headers, query)
        theirs = await route.send(sent, role, headers, query)
        assert ours.status_code == theirs.status_code, (name, ours.text, theirs.text)
        assert ours.headers["content-type"] == theirs.headers["content-type"], name
        if ours.status_code == 201:
            assert ours.content == theirs.content, name
        else:
            assert ours.json() == theirs.json(), name
        assert ours.headers.get("www-authenticate") == theirs.headers.get("www-authenticate")


async def test_only_the_plain_case_takes_the_fast_path(
    twins: tuple[Twin, Twin], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _ = twins
    taken: list[str] = []

    async def spy(services: Services, command: Checkout) -> Response:
        taken.append(command.checkout_id)
        return await ring_up(services, command)

    monkeypatch.setattr(fast_checkout, "ring_up", spy)
    statuses = {}
    for name, sent, role, headers, query in REQUESTS:
        statuses[name] = (await fast.send(sent, role, headers, query)).status_code
    # the plain ones (a time included: the route's model parses it), their retries and
    # conflicts, and the domain's refusals of bodies the model accepts
    plain = ["c-1", "c-1", "c-1", "c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-12"]
    # tenders the model takes (the domain's tender rules refuse some: c-33)
    plain += ["c-1", "c-1", "c-30", "c-31", "c-31", "c-32", *["c-33"] * 6, "c-34"]
    plain += ["c-13", "c-15"]
    assert taken == plain  # not c-14: pydantic's parser refuses a byte order mark
    assert statuses["card"] == statuses["card again"] == statuses["split"] == 201
    assert statuses["the same id, other tenders"] == 409
    assert statuses["cash short"] == statuses["cash 3.5"] == statuses["three tenders"] == 422
    assert statuses["plain"] == statuses["plain, second"] == 201
    assert statuses["the same id, another till"] == 409
    assert statuses["unknown product"] == statuses["discontinued product"] == 422


def _identifiers() -> st.SearchStrategy[object]:
    return st.one_of(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,8}", fullmatch=True),
        st.sampled_from(["x" * 100, "x" * 101, "", " a", "-a", "a b", "é", "a\n"]),
        st.text(max_size=4),
        st.integers(),
        st.none(),
    )


def _quantities() -> st.SearchStrategy[object]:
    return st.one_of(
        st.integers(min_value=1, max_value=10_000),
        st.integers(min_value=-2, max_value=10_002),
        st.sampled_from([0, 10_001, 2**70, True, False, 1.0, 2.5, "3", None]),
    )


def _lines() -> st.SearchStrategy[object]:
    entry = st.one_of(
        st.fixed_dictionaries({"product_id": _identifiers(), "quantity": _quantities()}),
        st.fixed_dictionaries(
            {}, optional={"product_id": _identifiers(), "quantity": _quantities(), "x": st.none()}
        ),
    )
    return st.one_of(
        st.lists(entry, min_size=1, max_size=4),
        st.lists(entry, min_size=99, max_size=102),
        st.sampled_from([[], None, "apple", {}]),
    )


def _bodies() -> st.SearchStrategy[object]:
    fields = {"checkout_id": _identifiers(), "till_id": _identifiers(), "lines": _lines()}
    others = {
        "at": st.sampled_from([None, "2026-05-01T12:00:00Z", "now", 5]),
        "coupon": st.integers(),
    }
    return st.one_of(
        st.fixed_dictionaries(fields, optional=others),
        st.fixed_dictionaries({}, optional={**fields, **others}),
    )


def _accepted_by_route(document: object) -> CheckoutIn | None:
    try:
        return CheckoutIn.model_validate(document)
    except ValidationError:
        return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_what_the_fast_path_takes_for_plain_the_route_accepts_as_the_same_checkout(
    document: object,
) -> None:
    command = plain_checkout(json.dumps(document).encode())
    if command is None:
        return
    accepted = _accepted_by_route(document)  # as FastAPI parses: Python's json, then the model
    assert accepted is not None, document
    assert command == checkout_command(accepted, None)


@pytest.mark.parametrize(
    "accepted",
    [PLAIN, {**PLAIN, "at": None}, {**PLAIN, "lines": [line("p", 10_000)] * 100}],
    ids=["plain", "at null", "most lines, most units"],
)
def test_plain_bodies_are_taken(accepted: dict[str, Any]) -> None:
    assert plain_checkout(json.dumps(accepted).encode()) is not None


async def test_the_201_is_exactly_the_documented_checkout_recorded(
    twins: tuple[Twin, Twin],
) -> None:
    for twin in twins:
        response = await twin.send(body(checkout_id="c-20"), "till", {}, "")
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        documented = CheckoutRecorded.model_validate_json(response.content)
        assert response.json() == documented.model_dump(mode="json")  # no field more or less
        assert [line.product_id for line in documented.checkout.lines] == ["apple", "pear"]
        assert documented.checkout.total == 2 * 120 + 80


@pytest.mark.parametrize("path", [0, 1], ids=["fast", "route"])
async def test_a_checkout_the_report_passed_first_counts_in_its_latency_on_both_paths(
    twins: tuple[Twin, Twin], monkeypatch: pytest.MonkeyPatch, path: int
) -> None:
    """The report's watch may pass a checkout between its append and the request's next
    line; the request metrics (around the fast path too) still count it, once."""
    twin = twins[path]
    services = twin.app.state.services
    sale = services.shop.sale
    record = sale.checkout_recorded_async

    async def passed_first(command: Checkout) -> Any:
        receipt, recorded = await record(command)
        services.metrics.latency.progressed(dict(receipt.positions))  # as the watch does
        return receipt, recorded

    monkeypatch.setattr(sale, "checkout_recorded_async", passed_first)
    registry = services.metrics.registry
    before = registry.get_sample_value("tillflow_checkout_to_report_seconds_count") or 0
    response = await twin.send(body(checkout_id="c-30"), "till", {}, "")
    assert response.status_code == 201, response.text
    after = registry.get_sample_value("tillflow_checkout_to_report_seconds_count")
    assert after == before + 1
