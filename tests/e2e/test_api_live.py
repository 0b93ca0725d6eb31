"""The live stream (server-sent events) on a real socket: the whole report at once, then
the rows a checkout changed, within a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.servers import Api, ServerThread
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import shop_processors

DEADLINE = 10.0


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """(event, decoded data) for each server-sent event; comments skipped."""
    event, data = "message", list[str]()
    async for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


async def next_report(events: AsyncIterator[tuple[str, Any]]) -> dict[str, Any]:
    async for event, data in events:
        if event == "report":
            assert isinstance(data, dict)
            return data
    raise AssertionError("the stream ended")


async def test_the_live_stream_sends_the_report_then_the_rows_a_checkout_changed(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(
        tmp_path / "shop.db", registry=service_registry(), durability="off"
    ) as store:
        book = TokenBook(store)
        tokens = {role: book.create(role.value, role)[0] for role in Role}
        app = create_app(store=store)
        with ServerThread(app) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client:
                api = Api(client, store, tokens, app)
                for product_id in ("apple", "pear"):
                    body = {"product_id": product_id, "name": product_id.title(), "price": 100}
                    assert (await api.post("/catalog", body)).status_code == 201
                async with (
                    asyncio.timeout(DEADLINE),
                    client.stream(
                        "GET", "/events/report", params={"access_token": tokens[Role.VIEWER]}
                    ) as stream,
                ):
                    assert stream.status_code == 200
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    events = sse_events(stream.aiter_lines())
                    first = await next_report(events)
                    assert first["full"] is True
                    sold = await api.post(
                        "/checkouts",
                        {
                            "checkout_id": "c-1",
                            "till_id": "t",
                            "lines": [{"product_id": "apple", "quantity": 2}],
                        },
                        role=Role.TILL,
                    )
                    position = sold.json()["receipt"]["positions"]["0"]
                    while True:
                        change = await next_report(events)
                        assert change["full"] is False
                        if change["freshness"]["checkpoint"]["0"] >= position:
                            break
                    assert [row["product_id"] for row in change["rows"]] == ["apple"]
                    assert change["rows"][0]["units_sold"] == 2
                    assert change["totals"]["checkouts"] == 1
                    async for event, data in events:
                        if event == "processors":
                            assert {row["processor"] for row in data["processors"]} == {
                                processor.name for processor in shop_processors()
                            }
                            break


async def test_the_live_stream_needs_a_viewer_or_manager_token(api: Api) -> None:
    assert (await api.client.get("/events/report")).status_code == 401
    till = await api.client.get("/events/report", params={"access_token": api.tokens[Role.TILL]})
    assert till.status_code == 403
