"""The checkout→report latency counts every checkout appended through the server once:
also one the report passed before its request went on (under load the report's watch can
run between the append's commit and the handler's next line), never a replay of one the
report had passed before the request began.

A POST through :class:`RequestMetrics` is played by a small ASGI app that does what the
checkout route and the report's watch do, in the order the race produces."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.types import Receive, Scope, Send

from tillflow.engine import Receipt
from tillflow.http.metrics import Metrics, RequestMetrics

COUNT = "tillflow_checkout_to_report_seconds_count"
SUM = "tillflow_checkout_to_report_seconds_sum"


def receipt(position: int) -> Receipt:
    return Receipt(positions={0: position}, streams={f"checkout-{position}": 1})


def observed(metrics: Metrics) -> tuple[float | None, float | None]:
    """(count, sum) of the latency histogram."""
    registry = metrics.registry
    return registry.get_sample_value(COUNT), registry.get_sample_value(SUM)


def served(metrics: Metrics, handle: Callable[[], None]) -> httpx.AsyncClient:
    """A client of an app that runs ``handle`` for each request, behind the request
    metrics."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handle()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=RequestMetrics(app, metrics))
    return httpx.AsyncClient(transport=transport, base_url="http://tillflow.test")


async def test_a_checkout_the_report_passed_before_its_request_went_on_is_counted() -> None:
    metrics = Metrics()
    tracker = metrics.latency
    tracker.progressed({0: 4})

    def ring_up() -> None:
        tracker.progressed({0: 5})  # the watch ran between the commit and the handler
        tracker.appended(receipt(5))

    async with served(metrics, ring_up) as client:
        assert (await client.post("/checkouts")).status_code == 201
    assert observed(metrics) == (1.0, 0.0)
    assert tracker.size == 0
    tracker.appended(receipt(5))  # a replay after the request: the request's start is gone
    assert observed(metrics) == (1.0, 0.0)


async def test_a_replay_of_a_checkout_passed_before_the_request_is_not_counted() -> None:
    metrics = Metrics()
    tracker = metrics.latency
    tracker.appended(receipt(5))
    tracker.progressed({0: 5})
    assert observed(metrics)[0] == 1.0

    async with served(metrics, lambda: tracker.appended(receipt(5))) as client:
        assert (await client.post("/checkouts")).status_code == 201
    assert observed(metrics)[0] == 1.0
    tracker.appended(receipt(5))  # outside a request: the same
    assert observed(metrics)[0] == 1.0


async def test_a_checkout_the_report_has_not_passed_waits_for_it() -> None:
    metrics = Metrics()
    tracker = metrics.latency
    async with served(metrics, lambda: tracker.appended(receipt(7))) as client:
        assert (await client.post("/checkouts")).status_code == 201
    assert (observed(metrics)[0], tracker.size) == (0.0, 1)
    tracker.progressed({0: 6})
    assert (observed(metrics)[0], tracker.size) == (0.0, 1)
    tracker.progressed({0: 7})
    assert (observed(metrics)[0], tracker.size) == (1.0, 0)
