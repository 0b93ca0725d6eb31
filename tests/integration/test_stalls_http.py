"""A stall, for real: the shop served over HTTP on an SQLite file, its processors running in
the app, Inventory's handler held on a checkout. ``GET /processors`` and ``/metrics`` show
Inventory ``stalled``, the report ``stalled`` waiting on Inventory, the processors that are
caught up not stalled; once the handler is let go, every one moves on and none is stalled."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Api, serving
from tillflow.engine import RecordedEvent, Session, SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.service.settings import Settings
from tillflow.shop.inventory import processor as inventory

STALL_AFTER = 0.5
DEADLINE = 15.0

HELD = ("inventory", "reporting")
INVENTORY = {"processor": "inventory", "lane": "0"}

Statuses = dict[tuple[str, int], dict[str, Any]]


class Gate:
    """Holds Inventory's handler on the first checkout until :meth:`release`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def holding(
        self, handle: Callable[[RecordedEvent, Session], None]
    ) -> Callable[[RecordedEvent, Session], None]:
        def held(event: RecordedEvent, session: Session) -> None:
            if event.type == "CheckedOut" and not self.released.is_set():
                self.entered.set()
                self.released.wait(DEADLINE)  # never for ever, even if the test fails
            handle(event, session)

        return held


async def processors(api: Api) -> Statuses:
    answer = await api.get("/processors")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stall_after"] == STALL_AFTER
    return {(row["processor"], row["lane"]): row for row in body["processors"]}


async def until(api: Api, holds: Callable[[Statuses], bool]) -> Statuses:
    """``GET /processors`` until ``holds`` says so, for at most :data:`DEADLINE` seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        rows = await processors(api)
        if holds(rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


async def metric(api: Api, name: str, **labels: str) -> float:
    answer = await api.get("/metrics")
    assert answer.status_code == 200, answer.text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", answer.text, re.MULTILINE)
    assert found is not None, f"{name}{{{wanted}}} missing"
    return float(found.group(1))


async def stalled_lanes(api: Api, processor: str) -> float:
    return await metric(api, "tillflow_processor_stalled_lanes", processor=processor)


async def ring_up(api: Api) -> None:
    added = await api.post("/catalog", {"product_id": "apple", "name": "Apple", "price": 45})
    assert added.status_code == 201, added.text
    lines = [{"product_id": "apple", "quantity": 2}]
    body = {"checkout_id": "c-1", "till_id": "till-1", "lines": lines}
    sold = await api.post("/checkouts", body, role="till")
    assert sold.status_code == 201, sold.text


async def shows_the_stall(api: Api) -> None:
    """Inventory held in its handler; the report held at its barrier behind it."""
    rows = await until(
        api,
        lambda rows: (
            all(rows[(name, 0)]["state"] == "stalled" for name in HELD)
            and rows[("tills", 0)]["lag_events"] == 0  # it numbered the checkout
        ),
    )
    held, behind = rows[("inventory", 0)], rows[("reporting", 0)]
    assert held["lag_events"] > 0 and held["stalled_seconds"] >= STALL_AFTER, held
    assert held["waiting_on"] is None, held  # stuck in itself
    assert behind["waiting_on"] == "inventory", behind
    caught_up = [row for row in rows.values() if row["lag_events"] == 0]
    assert all(row["state"] != "stalled" for row in caught_up), caught_up
    state = await metric(api, "tillflow_processor_state", **INVENTORY, state="stalled")
    seconds = await metric(api, "tillflow_processor_stalled_seconds", **INVENTORY)
    assert (state, seconds >= STALL_AFTER) == (1.0, True), seconds
    for name in HELD:
        assert await stalled_lanes(api, name) == 1.0, name


async def test_a_held_handler_is_stalled_over_http_and_running_again_once_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    monkeypatch.setattr(inventory, "handle", gate.holding(inventory.handle))
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=service_registry(), durability="off") as store:
        async with serving(store, settings=Settings(stall_after=STALL_AFTER)) as api:
            try:
                await ring_up(api)
                assert await asyncio.to_thread(gate.entered.wait, DEADLINE)
                await shows_the_stall(api)
            finally:
                gate.released.set()
            rows = await until(api, lambda rows: all(r["lag_events"] == 0 for r in rows.values()))
            assert all(row["state"] in ("idle", "running") for row in rows.values()), rows
            assert all(row["stalled_seconds"] == 0.0 for row in rows.values()), rows
            for name in HELD:
                assert await stalled_lanes(api, name) == 0.0, name
            report = await api.get("/report/products/apple")
            assert report.status_code == 200, report.text
            assert report.json()["row"]["units_sold"] == 2
