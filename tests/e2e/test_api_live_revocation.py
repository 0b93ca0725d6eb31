"""The live stream on a real socket ends soon after its token is revoked — not only when it
reconnects — with a last ``revoked`` event; a stream whose token stands goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import ServerThread
from tests.e2e.test_api_live import next_report, sse_events
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.http.events import PROCESSORS_INTERVAL, TOKEN_INTERVAL
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry

DEADLINE = 10.0
NOTICED_WITHIN = TOKEN_INTERVAL + PROCESSORS_INTERVAL + 2.0
"""A revocation ends the stream within the token check's interval, the longest wait of
the stream's loop between two checks, and slack for a loaded machine."""


def _stream(
    client: httpx.AsyncClient, token: str, in_query: bool
) -> AbstractAsyncContextManager[httpx.Response]:
    if in_query:
        return client.stream("GET", "/events/report", params={"access_token": token})
    return client.stream("GET", "/events/report", headers={"Authorization": f"Bearer {token}"})


async def _rest(events: AsyncIterator[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [event async for event in events]


@pytest.mark.parametrize("in_query", [False, True], ids=["bearer-header", "access_token"])
async def test_a_revoked_token_s_stream_ends_with_a_revoked_event_and_cannot_reconnect(
    tmp_path: Path, in_query: bool
) -> None:
    with SqliteEventStore(
        tmp_path / "shop.db", registry=service_registry(), durability="off"
    ) as store:
        book = TokenBook(store)
        viewer = book.create("wall-screen", Role.VIEWER)[0]
        manager = book.create("alice", Role.MANAGER)[0]
        app = create_app(store=store)
        with ServerThread(app) as server:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client,
                asyncio.timeout(4 * DEADLINE),
                _stream(client, viewer, in_query) as revoked_stream,
                _stream(client, manager, in_query) as kept_stream,
            ):
                assert (revoked_stream.status_code, kept_stream.status_code) == (200, 200)
                revoked_events = sse_events(revoked_stream.aiter_lines())
                kept_events = sse_events(kept_stream.aiter_lines())
                assert (await next_report(revoked_events))["full"] is True
                assert (await next_report(kept_events))["full"] is True

                # as `tillflow token revoke` does from another process, and the name is
                # given to a new token at once: the stream's own token is what counts
                TokenBook(store).revoke("wall-screen")
                revoked_at = time.monotonic()
                book.create("wall-screen", Role.VIEWER)

                rest = await asyncio.wait_for(_rest(revoked_events), DEADLINE)
                ended_after = time.monotonic() - revoked_at
                assert rest, "the stream ended without a word"
                assert rest[-1] == ("revoked", {"reason": "token 'wall-screen' was revoked"})
                assert {name for name, _ in rest[:-1]} <= {"report", "processors", "sales"}
                assert ended_after < NOTICED_WITHIN, f"ended {ended_after:.1f}s after revoking"

                # the manager's stream goes on past more than one token check: it still
                # delivers an event once two token intervals have passed since revoking
                # (counting three `processors` events raced the 1 s cadence: 1.99999 s)
                async for name, _ in kept_events:
                    assert name in ("report", "processors", "sales")
                    if time.monotonic() - revoked_at > 2 * TOKEN_INTERVAL:
                        break
                else:
                    raise AssertionError("the manager's stream ended")

            async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client:
                again = await client.get(
                    "/events/report",
                    headers={"Authorization": f"Bearer {viewer}"},
                )
                assert again.status_code == 401
                assert "revoked" in again.json()["detail"]
