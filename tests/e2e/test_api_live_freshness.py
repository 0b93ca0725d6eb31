"""The live stream keeps the report's freshness true even when no row changes: an event the
report passes without changing a row (a token created, Inventory's own events after a
checkout), or the log moving while the report does not, still reaches a subscriber as a
``report`` message with the new checkpoint, head and lag.

The dashboard once said "3 events behind the log" for good: the last events after a
checkout changed no row, and the stream only sent a report when a row changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.servers import ServerThread
from tests.e2e.test_api_live import next_report, sse_events
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry

DEADLINE = 10.0


async def report_where(
    events: AsyncIterator[tuple[str, Any]], lane: str, checkpoint: int, head: int
) -> dict[str, Any]:
    """The first ``report`` message whose freshness on ``lane`` is ``checkpoint`` of
    ``head`` (the caller bounds the wait)."""
    while True:
        message = await next_report(events)
        freshness = message["freshness"]
        if (freshness["checkpoint"][lane], freshness["head"][lane]) == (checkpoint, head):
            return message


async def settled_head(client: httpx.AsyncClient, token: str) -> int:
    """Lane 0's head once ``GET /processors`` shows every processor caught up with it."""
    async with asyncio.timeout(DEADLINE):
        while True:
            answer = await client.get("/processors", headers={"Authorization": f"Bearer {token}"})
            status = answer.json()
            if all(row["lag_events"] == 0 for row in status["processors"]):
                head: int = status["heads"]["0"]
                return head
            await asyncio.sleep(0.02)


async def test_the_stream_says_the_report_caught_up_when_the_last_events_change_no_row(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(
        tmp_path / "shop.db", registry=service_registry(), durability="off"
    ) as store:
        book = TokenBook(store)
        viewer = book.create("wall-screen", Role.VIEWER)[0]
        app = create_app(store=store)
        with ServerThread(app) as server:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client,
            ):
                settled = await settled_head(client, viewer)
                async with client.stream(
                    "GET", "/events/report", params={"access_token": viewer}
                ) as stream:
                    events = sse_events(stream.aiter_lines())
                    async with asyncio.timeout(DEADLINE):
                        first = await next_report(events)
                    assert first["full"] is True
                    assert first["freshness"]["checkpoint"]["0"] == settled
                    assert first["freshness"]["head"]["0"] == settled

                    # an event the report passes without changing a row
                    book.create("till-9", Role.TILL)
                    head = store.heads()[0]
                    assert head == settled + 1
                    async with asyncio.timeout(DEADLINE):
                        caught_up = await report_where(events, "0", head, head)
                    assert caught_up["full"] is False
                    assert caught_up["rows"] == []
                    assert caught_up["freshness"]["lag_events"] == 0
                    assert caught_up["freshness"]["lag_seconds"] == 0


async def test_the_stream_says_the_report_fell_behind_when_only_the_log_moves(
    tmp_path: Path,
) -> None:
    """No processors here (as with ``tillflow serve --no-processors`` while the workers are
    down): the report stands still while the log grows, and the stream says so."""
    with SqliteEventStore(
        tmp_path / "shop.db", registry=service_registry(), durability="off"
    ) as store:
        book = TokenBook(store)
        viewer = book.create("wall-screen", Role.VIEWER)[0]
        app = create_app(store=store, run_processors=False)
        with ServerThread(app) as server:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client,
                client.stream("GET", "/events/report", params={"access_token": viewer}) as stream,
            ):
                events = sse_events(stream.aiter_lines())
                async with asyncio.timeout(DEADLINE):
                    first = await next_report(events)
                checkpoint = first["freshness"]["checkpoint"]["0"]
                before = first["freshness"]["head"]["0"]

                book.create("till-9", Role.TILL)
                async with asyncio.timeout(DEADLINE):
                    behind = await report_where(events, "0", checkpoint, before + 1)
                assert behind["rows"] == []
                assert behind["freshness"]["lag_events"] == before + 1 - checkpoint
