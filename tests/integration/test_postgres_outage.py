"""The PostgreSQL server restarted under a real `tillflow serve` (taking checkouts, its
processors leasing lanes) and a real `tillflow worker`: both wait it out, say so once,
and resume by themselves; every acknowledged checkout is in the report, none twice. Its
own cluster, since it stops the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from tests.e2e.test_serve_process import free_port
from tests.postgres_cluster import PostgresCluster, running_cluster
from tillflow.engine import EventStore, Receipt
from tillflow.engine.postgres import PostgresEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.reporting.audit import read_rows, read_totals
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.commands import AddProduct
from tillflow.shop.sale.events import CheckedOut, checkout_stream

LANES = 4
TTL = 1.5
PRODUCTS = [f"p{n}" for n in range(4)]
OUTAGE = 3.0  # seconds the server stays down: past the lease TTL


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


@contextmanager
def tillflow(
    args: list[str], log: IO[bytes], env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tillflow", *args], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Till:
    """Rings up checkouts over HTTP, each sent again with the same id until acknowledged."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )
        self.acknowledged: list[str] = []
        self.receipts: dict[str, str] = {}
        self.statuses: list[int] = []
        self.retry_after: set[str] = set()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.last_receipt = ""
        self.thread = threading.Thread(target=self._guarded, daemon=True)

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as error:  # said by __exit__, in the test's thread
            self.error = error

    def _run(self) -> None:
        number = 0
        while not self.stop.is_set():
            checkout_id = f"c-{number}"
            body = {
                "checkout_id": checkout_id,
                "till_id": "till-1",
                "lines": [{"product_id": PRODUCTS[number % len(PRODUCTS)], "quantity": 1}],
            }
            while True:  # the same key until acknowledged, even after stop
                try:
                    answer = self.client.post("/checkouts", json=body)
                except httpx.TransportError:
                    self.statuses.append(0)
                    time.sleep(0.05)
                    continue
                self.statuses.append(answer.status_code)
                if answer.status_code == 201:
                    self.acknowledged.append(checkout_id)
                    self.last_receipt = answer.json()["receipt"]["token"]
                    self.receipts[checkout_id] = self.last_receipt
                    break
                assert answer.status_code == 503, (answer.status_code, answer.text)
                self.retry_after.add(answer.headers.get("retry-after", ""))
                time.sleep(0.05)
            number += 1

    def __enter__(self) -> Till:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(60)
        self.client.close()
        if self.error is not None:
            raise self.error


def report_equals_truth(store: EventStore, acknowledged: list[str]) -> None:
    shop = Shop(store)

    async def drain() -> None:
        async with shop.runtime(run=[]) as runtime:  # serve and the worker run them
            await runtime.drain(timeout=60)

    asyncio.run(drain())
    truth = ShopTruth()
    for product_id in PRODUCTS:
        truth.received(product_id, 1000)
    for checkout_id in acknowledged:
        stream = checkout_stream(checkout_id)
        [event] = store.read_stream(stream)  # recorded once
        truth.checked_out(
            event.decode(CheckedOut), Receipt({event.lane: event.position}, {stream: 1})
        )
    totals = read_totals(store, REPORT_VIEWS)
    assert truth.violations(read_rows(store, REPORT_VIEWS), totals) == []
    assert totals.checkouts == len(acknowledged)


def lease_holders(store: PostgresEventStore) -> set[str | None]:
    """The workers holding a lease now (none while the test's own connections fail)."""
    try:
        return {row.owner for row in store.leases.rows() if row.held}
    except Exception:
        return set()


def outage_lines(log: Path) -> list[str]:
    """What a process said about the database going and coming back."""
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if "processors: database" in line]


def store_state(viewer: httpx.Client) -> str | None:
    """The database's state as ``serve`` says in ``GET /processors``."""
    try:
        answer = viewer.get("/processors")
    except httpx.TransportError:
        return None
    if answer.status_code != 200:
        return None
    state: str = answer.json()["store"]["state"]
    return state


def seed(store: EventStore) -> tuple[str, str]:
    """The catalog and stock; a till's and a viewer's token."""
    shop = Shop(store)
    for number, product_id in enumerate(PRODUCTS):
        shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + number))
        shop.inventory.receive(ReceiveStock(product_id, 1000))
    book = TokenBook(store)
    return book.create("till-1", Role.TILL)[0], book.create("viewer-1", Role.VIEWER)[0]


def said_while_away(viewer: httpx.Client) -> None:
    """``serve`` says the database is away in ``/processors`` and ``/metrics``."""
    eventually(lambda: store_state(viewer) == "degraded")
    status = viewer.get("/processors").json()
    assert status["store"]["last_error"] and status["store"]["since"]
    # a lane it still holds is degraded; one whose lease ran out meanwhile, elsewhere
    assert {row["state"] for row in status["processors"]} & {"degraded", "elsewhere"}
    assert "tillflow_store_unavailable 1.0" in viewer.get("/metrics").text


@contextmanager
def outage(cluster: PostgresCluster) -> Iterator[None]:
    """The server crashed (under load) for the block and at least ``OUTAGE`` seconds, then
    started again (also when the block fails)."""
    cluster.stop("immediate")
    stopped = time.monotonic()
    try:
        yield
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
    finally:
        cluster.start()


def test_serve_and_a_worker_wait_out_a_server_restart_and_lose_nothing(tmp_path: Path) -> None:
    with running_cluster() as cluster:
        url = cluster.create_database()
        store = PostgresEventStore(url, lanes=LANES, registry=service_registry())
        try:
            till_token, viewer_token = seed(store)
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(sys.path),
                "TILLFLOW_LOG_LEVEL": "warning",
            }
            serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
            leasing = ["--database", url, "--lease-ttl", str(TTL)]
            with (
                serve_log.open("wb") as serve_out,
                worker_log.open("wb") as worker_out,
                tillflow(["serve", "--port", str(port), *leasing], serve_out, env) as serve,
                tillflow(["worker", *leasing], worker_out, env) as worker,
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {viewer_token}"},
                    timeout=10.0,
                ) as viewer,
            ):
                eventually(lambda: len(lease_holders(store)) == 2)  # serve and worker share
                with Till(f"http://127.0.0.1:{port}", till_token) as till:
                    eventually(lambda: len(till.acknowledged) >= 20)
                    with outage(cluster):
                        said_while_away(viewer)
                        down = len(till.acknowledged)
                    back = time.monotonic()
                    eventually(lambda: len(till.acknowledged) >= down + 20)
                    eventually(lambda: len(lease_holders(store)) == 2)  # both lease again
                    eventually(lambda: store_state(viewer) == "ok")
                    print(f"serve and the worker moving again {time.monotonic() - back:.1f} s")
                read = viewer.get("/report", params={"wait_for": till.last_receipt, "timeout": 20})
                assert read.json()["freshness"]["waited"] == "reached"  # the watch follows again
                assert serve.poll() is None and worker.poll() is None
                report_equals_truth(store, till.acknowledged)
                for process in (serve, worker):
                    process.send_signal(signal.SIGTERM)
                    assert process.wait(15) == 0  # a clean stop after the outage
            assert 503 in till.statuses and till.retry_after == {"1"}
            said = outage_lines(worker_log)  # once when it went, once when it came back
            assert len(said) == 2 and "unavailable" in said[0] and "back after" in said[1], said
            assert len(outage_lines(serve_log)) == 2, serve_log.read_text()
        finally:
            store.close()
