"""The report, processors and metrics over HTTP; read-your-writes with receipt tokens."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import Api
from tillflow.engine import SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import shop_processors


async def test_read_your_writes_the_report_waits_for_the_receipt_and_says_so(shop: Api) -> None:
    sold = await shop.post(
        "/checkouts",
        {"checkout_id": "c-1", "till_id": "t", "lines": [{"product_id": "apple", "quantity": 4}]},
        role=Role.TILL,
    )
    token = sold.json()["receipt"]["token"]
    report = await shop.get("/report", params={"wait_for": token, "timeout": 10})
    assert report.status_code == 200
    body = report.json()
    assert body["freshness"]["waited"] == "reached"
    position = sold.json()["receipt"]["positions"]["0"]
    assert body["freshness"]["checkpoint"]["0"] >= position
    assert body["freshness"]["as_of"][0]["position"] == body["freshness"]["checkpoint"]["0"]
    apple = next(row for row in body["rows"] if row["product_id"] == "apple")
    assert (apple["units_sold"], apple["revenue"], apple["stock_left"]) == (4, 480, 6)
    assert apple["received"] - apple["units_sold"] + apple["units_returned"] == apple["stock_left"]
    assert body["totals"]["checkouts"] == 1
    assert body["totals"]["revenue"] == 480
    one = await shop.get("/report/products/apple", params={"wait_for": token})
    assert one.json()["row"] == apple
    assert (await shop.get("/report/products/kiwi")).status_code == 404


async def test_without_wait_for_the_report_says_nothing_was_waited_for(shop: Api) -> None:
    report = await shop.get("/report", role=Role.MANAGER)
    assert report.json()["freshness"]["waited"] is None
    assert {row["product_id"] for row in report.json()["rows"]} <= {"apple", "pear", "milk"}


@pytest.mark.parametrize(
    ("wait_for", "reason"),
    [
        ("not base64!", "String should match pattern"),
        ("bm9wZQ", "not a receipt token"),  # "nope"
        ("OTowOjE", "not a receipt token"),  # "9:0:1"
        ("NTox", "names lane 5: no such lane"),  # "5:1"
        ("MDo5OTk5OTk", "beyond the log's head"),  # "0:999999"
    ],
)
async def test_a_wait_for_that_is_not_a_receipt_of_this_store_is_422(
    shop: Api, wait_for: str, reason: str
) -> None:
    response = await shop.get("/report", params={"wait_for": wait_for})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["location"]) == ("wait_for", "query")
    assert reason in error["reason"]


async def test_with_processors_elsewhere_a_wait_times_out_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry(), durability="off") as store:
        viewer, _ = TokenBook(store).create("v", Role.VIEWER)
        manager, _ = TokenBook(store).create("m", Role.MANAGER)
        app = create_app(store=store, run_processors=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://tillflow.test"
            ) as client,
        ):
            added = await client.post(
                "/catalog",
                json={"product_id": "tea", "name": "Tea", "price": 1},
                headers={"Authorization": f"Bearer {manager}"},
            )
            token = added.json()["receipt"]["token"]
            report = await client.get(
                "/report",
                params={"wait_for": token, "timeout": 0.2},
                headers={"Authorization": f"Bearer {viewer}"},
            )
            assert report.status_code == 200
            assert report.json()["freshness"]["waited"] == "timed_out"
            assert report.json()["freshness"]["lag_events"] > 0
            status = await client.get("/processors", headers={"Authorization": f"Bearer {viewer}"})
            states = {row["processor"]: row["state"] for row in status.json()["processors"]}
            assert states == {processor.name: "elsewhere" for processor in shop_processors()}


async def test_processors_show_checkpoint_head_lag_barrier_and_state(shop: Api) -> None:
    await shop.settled_heads()
    deadline = time.monotonic() + 5
    while True:  # a processor turns idle at its next look after the drain
        response = await shop.get("/processors")
        assert response.status_code == 200
        body = response.json()
        if {row["state"] for row in body["processors"]} == {"idle"}:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.01)
    head = body["heads"]["0"]
    rows = {row["processor"]: row for row in body["processors"]}
    assert sorted(rows) == sorted(processor.name for processor in shop_processors())
    for row in rows.values():
        assert (row["checkpoint"], row["head"], row["lag_events"]) == (head, head, 0)
        assert row["state"] == "idle"
        assert row["failures"] == 0
        assert row["error"] is None


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample."""
    for line in metrics.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if line.split("{")[0].split(" ")[0] == name and all(
            found.get(k) == v for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in the metrics")


async def test_metrics_show_processors_checkout_to_report_latency_and_routes(shop: Api) -> None:
    for number in range(3):
        sold = await shop.post(
            "/checkouts",
            {
                "checkout_id": f"m-{number}",
                "till_id": "t",
                "lines": [{"product_id": "pear", "quantity": 1}],
            },
            role=Role.TILL,
        )
    token = sold.json()["receipt"]["token"]
    assert (await shop.get("/report", params={"wait_for": token})).json()["freshness"][
        "waited"
    ] == "reached"
    # the report's watch observes the latency when it sees the checkpoint move (at once
    # on a commit, else within its poll): wait for all three, with a deadline
    async with asyncio.timeout(10):
        while True:
            response = await shop.get("/metrics")
            assert response.status_code == 200
            text = response.text
            if sample(text, "tillflow_checkout_to_report_seconds_count") >= 3:
                break
            await asyncio.sleep(0.02)
    assert response.headers["content-type"].startswith("text/plain")
    head = shop.store.head(0)
    assert sample(text, "tillflow_processor_head", processor="reporting", lane="0") <= head
    assert sample(text, "tillflow_processor_checkpoint", processor="inventory", lane="0") > 0
    assert sample(text, "tillflow_processor_lag_events", processor="reporting", lane="0") >= 0
    assert sample(text, "tillflow_processor_lag_seconds", processor="reporting", lane="0") >= 0
    assert sample(text, "tillflow_processor_failures_total", processor="reporting", lane="0") == 0
    assert sample(text, "tillflow_processor_batches_total", processor="reporting", lane="0") > 0
    assert sample(text, "tillflow_processor_last_batch_size", processor="inventory", lane="0") > 0
    assert sample(
        text, "tillflow_processor_state", processor="inventory", lane="0", state="idle"
    ) in (0.0, 1.0)
    assert sample(text, "tillflow_checkout_to_report_seconds_count") == 3
    assert (
        sample(
            text,
            "tillflow_http_request_duration_seconds_count",
            method="POST",
            route="/stock/{product_id}/deliveries",
            status="201",
        )
        == 3
    )
    assert "/stock/apple/deliveries" not in text  # templates, never raw paths
