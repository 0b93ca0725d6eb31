"""``tillflow serve --workers 2`` as a real process: two HTTP workers on one port and one
database (an SQLite file, or PostgreSQL with the supervisor's processors holding the lanes
by leases), the processors in the supervisor. Checkouts go to either worker; a retry
answered by the other worker gets the original receipt; the report, read from any worker,
reflects every acknowledged checkout (read-your-writes), and so does the live stream.
SIGTERM stops everything (exit 0, no process left behind); a worker that dies stops the
rest (exit 1, said plainly)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.test_serve_process import (
    DEADLINE,
    TILLFLOW,
    bearer,
    environment,
    free_port,
    process,
    stop,
    token,
    wait_until_healthy,
)
from tillflow.engine import Receipt
from tillflow.service.receipt_tokens import decode_receipt, encode_receipt

PRODUCTS = {"apple": 120, "pear": 80}


def workers_of(server: subprocess.Popen[str], count: int) -> list[psutil.Process]:
    """The supervisor's HTTP workers, once all ``count`` are up (or fail the test)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        children = psutil.Process(server.pid).children()
        if len(children) == count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, found {len(children)}")


def serving_pids(workers: list[psutil.Process], port: int) -> set[int]:
    """The workers holding an established connection on ``port``."""
    return {
        worker.pid
        for worker in workers
        for connection in worker.net_connections(kind="tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], str, int, dict[str, str]]]:
    """``tillflow serve --workers 2`` on a free port with a catalog, on an SQLite file or
    on PostgreSQL (the processors in the supervisor then hold the lanes by leases); its
    tokens by role."""
    port = free_port()
    database = (
        tmp_path / "shop.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    env = environment(database, port)
    tokens = {role: token(env, role, role) for role in ("manager", "till", "viewer")}
    url = f"http://127.0.0.1:{port}"
    with process([TILLFLOW, "serve", "--workers", "2"], env) as server:
        wait_until_healthy(url, server)
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            for product_id, price in PRODUCTS.items():
                added = client.post(
                    "/catalog",
                    json={"product_id": product_id, "name": product_id.title(), "price": price},
                    headers=bearer(tokens["manager"]),
                )
                assert added.status_code == 201, added.text
        yield server, url, port, tokens
        if server.poll() is None:
            code, _, output = stop(server)
            assert code == 0, output


def _check_out(client: httpx.Client, number: int, token: str) -> httpx.Response:
    """Checkout ``number`` (two apples), the same body however often it is sent."""
    return client.post(
        "/checkouts",
        json={
            "checkout_id": f"c-{number}",
            "till_id": f"till-{number % 3}",
            "lines": [{"product_id": "apple", "quantity": 2}],
        },
        headers=bearer(token),
    )


def test_both_workers_take_connections_and_the_report_reflects_every_checkout(
    shop: tuple[subprocess.Popen[str], str, int, dict[str, str]],
) -> None:
    server, url, port, tokens = shop
    workers = workers_of(server, 2)
    clients: list[httpx.Client] = []
    with ExitStack() as stack:
        # fresh connections until each worker holds one (the kernel picks who accepts)
        deadline = time.monotonic() + DEADLINE
        while serving_pids(workers, port) != {worker.pid for worker in workers}:
            assert time.monotonic() < deadline, "one worker never took a connection"
            assert len(clients) < 200, "one worker never took a connection"
            client = stack.enter_context(httpx.Client(base_url=url, timeout=DEADLINE))
            assert client.get("/health").status_code == 200
            clients.append(client)
        receipt = Receipt(positions={}, streams={})
        first: dict[int, bytes] = {}
        for number in range(40):
            client = clients[number % len(clients)]
            sold = _check_out(client, number, tokens["till"])
            assert sold.status_code == 201, sold.text
            first[number] = sold.content
            receipt = receipt.merge(decode_receipt(sold.json()["receipt"]["token"]))
        for number in (0, 1):  # retries on other connections: the original answers
            again = _check_out(clients[(number + 1) % len(clients)], number, tokens["till"])
            assert (again.status_code, again.content) == (201, first[number])
        for client in clients[:2]:  # read-your-writes from any worker
            report = client.get(
                "/report",
                params={"wait_for": encode_receipt(receipt), "timeout": DEADLINE},
                headers=bearer(tokens["viewer"]),
            ).json()
            assert report["freshness"]["waited"] == "reached"
            assert (report["totals"]["checkouts"], report["totals"]["units_sold"]) == (40, 80)
            assert report["totals"]["revenue"] == 40 * 2 * PRODUCTS["apple"]
    code, took, output = stop(server)
    assert code == 0, output
    assert took < DEADLINE, took
    assert not any(worker.is_running() for worker in workers)
    assert "Traceback" not in output and "ERROR" not in output, output


def test_the_live_stream_follows_checkouts_recorded_by_another_worker(
    shop: tuple[subprocess.Popen[str], str, int, dict[str, str]],
) -> None:
    _, url, _, tokens = shop
    with (
        httpx.Client(base_url=url, timeout=DEADLINE) as watcher,
        watcher.stream("GET", "/events/report", headers=bearer(tokens["viewer"])) as stream,
    ):
        lines = stream.iter_lines()
        data = (json.loads(line[5:]) for line in lines if line.startswith("data:"))
        first = next(item for item in data if "totals" in item)
        assert first["totals"]["checkouts"] == 0
        for number in range(6):  # new connections each: some land on the other worker
            with httpx.Client(base_url=url, timeout=DEADLINE) as till:
                sold = till.post(
                    "/checkouts",
                    json={
                        "checkout_id": f"live-{number}",
                        "till_id": "till-1",
                        "lines": [{"product_id": "pear", "quantity": 1}],
                    },
                    headers=bearer(tokens["till"]),
                )
                assert sold.status_code == 201, sold.text
        deadline = time.monotonic() + DEADLINE
        for item in data:
            assert time.monotonic() < deadline, "the stream did not reach 6 checkouts"
            if item.get("totals", {}).get("checkouts") == 6:
                sold_by_product = {row["product_id"]: row["units_sold"] for row in item["rows"]}
                assert sold_by_product["pear"] == 6
                break


def test_sigterm_while_the_workers_start_stops_everything_cleanly(tmp_path: Path) -> None:
    """A SIGTERM the moment the workers exist, while they are still importing (before any
    of them handles the signal itself): the supervisor asked them to stop and they did, so
    the server exits 0 — it once said "HTTP workers stopped with exit codes [0, -15]"."""
    env = environment(tmp_path / "shop.db", free_port())
    with process([TILLFLOW, "serve", "--workers", "2"], env) as server:
        workers = workers_of(server, 2)
        code, _, output = stop(server)
        assert code == 0, output
        assert "exit codes" not in output, output
        assert not any(worker.is_running() for worker in workers)


def test_a_worker_that_dies_stops_the_server_with_exit_code_1(
    shop: tuple[subprocess.Popen[str], str, int, dict[str, str]],
) -> None:
    server, _, port, _ = shop
    workers = workers_of(server, 2)
    workers[0].send_signal(signal.SIGKILL)
    code = server.wait(DEADLINE)
    output = server.stdout.read() if server.stdout else ""
    assert code == 1, output
    assert f"HTTP worker 1 (pid {workers[0].pid}) exited with code -9" in output
    deadline = time.monotonic() + DEADLINE
    while workers[1].is_running():
        assert time.monotonic() < deadline, "the other worker was left running"
        time.sleep(0.05)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nobody listens any more


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    shop: tuple[subprocess.Popen[str], str, int, dict[str, str]],
) -> None:
    server, _, port, _ = shop
    workers = workers_of(server, 2)
    server.kill()
    server.wait(DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while any(
        worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers
    ):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.05)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # the port is free again


def test_workers_need_an_sqlite_file(tmp_path: Path) -> None:
    env = environment(tmp_path / "shop.db", free_port())
    ran = subprocess.run(
        [TILLFLOW, "serve", "--workers", "2", "--database", "memory"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert ran.returncode == 2, ran.stderr
    assert "a memory store lives in one process" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
