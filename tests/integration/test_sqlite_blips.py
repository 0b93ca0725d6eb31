"""Blips of an SQLite file under a real `tillflow serve` taking checkouts while its
processors run: another process holding the file's write lock for seconds, then the disk
refusing every write for seconds (the server's file-size limit set to 0, as a full disk
does). Checkouts meeting a blip get 503 with ``Retry-After`` and nothing is written;
``/processors``, ``/health`` and ``tillflow status`` say ``degraded`` while it lasts;
everything resumes by itself; every acknowledged checkout is in the log once, at the
position its receipt names, and the report equals the truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import httpx

from tests.e2e.test_serve_process import TILLFLOW, free_port
from tests.integration.test_postgres_outage import (
    Till,
    eventually,
    outage_lines,
    report_equals_truth,
    seed,
    store_state,
    tillflow,
)
from tests.integration.test_sqlite_disk_blips import disk_refusing_writes
from tests.integration.test_sqlite_locked import held_lock
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.service.receipt_tokens import decode_receipt
from tillflow.shop.sale.events import checkout_stream

BUSY_TIMEOUT: Final = 0.5
BLIP: Final = 3.0
"""Seconds each blip lasts: several busy timeouts."""


def health(client: httpx.Client) -> str | None:
    try:
        answer = client.get("/health")
    except httpx.TransportError:
        return None
    state: str = answer.json()["status"]
    return state


def status_line(path: Path) -> str:
    """What `tillflow status` says of the database, as another process sees it."""
    shown = subprocess.run(
        [TILLFLOW, "status", "--database", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("database:")]
    return line


def said_degraded(viewer: httpx.Client, till: Till, path: Path | None) -> int:
    """During a blip: a checkout refused with 503, and ``degraded`` in ``/processors``,
    ``/health`` and (``path``) ``tillflow status``. The checkouts acknowledged then."""
    refused = till.statuses.count(503)
    eventually(lambda: till.statuses.count(503) > refused)
    eventually(lambda: store_state(viewer) == "degraded")
    assert health(viewer) == "degraded"
    assert viewer.get("/processors").json()["store"]["last_error"]
    if path is not None:
        assert status_line(path).startswith("database: degraded"), status_line(path)
    return len(till.acknowledged)


def back_again(viewer: httpx.Client, till: Till, down: int) -> float:
    """After a blip: checkouts acknowledged again and ``ok`` everywhere; the seconds it
    took."""
    back = time.monotonic()
    eventually(lambda: len(till.acknowledged) >= down + 20)
    eventually(lambda: store_state(viewer) == "ok" and health(viewer) == "ok")
    return time.monotonic() - back


def test_serve_waits_out_a_locked_file_and_a_full_disk_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    store = SqliteEventStore(path, registry=service_registry())
    try:
        till_token, viewer_token = seed(store)
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "TILLFLOW_LOG_LEVEL": "warning",
            "TILLFLOW_BUSY_TIMEOUT": str(BUSY_TIMEOUT),
        }
        url = f"http://127.0.0.1:{port}"
        serve_log = tmp_path / "serve.log"
        with (
            serve_log.open("wb") as serve_out,
            tillflow(
                ["serve", "--port", str(port), "--database", str(path)], serve_out, env
            ) as serve,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {viewer_token}"}, timeout=10.0
            ) as viewer,
        ):
            eventually(lambda: store_state(viewer) == "ok")
            assert status_line(path) == "database: ok"
            with Till(url, till_token) as till:
                eventually(lambda: len(till.acknowledged) >= 20)
                with held_lock(path):
                    started = time.monotonic()
                    down = said_degraded(viewer, till, path)
                    time.sleep(max(0.0, BLIP - (time.monotonic() - started)))
                    assert len(till.acknowledged) == down  # nothing gets through a lock
                print(f"moving again {back_again(viewer, till, down):.1f} s after the lock")
                assert status_line(path) == "database: ok"
                eventually(lambda: len(outage_lines(serve_log)) >= 2)
                said = outage_lines(serve_log)  # once as the lock came, once as it went
                assert len(said) == 2, said
                assert "unavailable" in said[0] and "locked" in said[0], said
                assert "back after" in said[1], said
                with disk_refusing_writes(serve.pid):
                    started = time.monotonic()
                    down = said_degraded(viewer, till, None)
                    time.sleep(max(0.0, BLIP - (time.monotonic() - started)))
                    assert len(till.acknowledged) == down
                print(f"moving again {back_again(viewer, till, down):.1f} s after the disk")
            read = viewer.get("/report", params={"wait_for": till.last_receipt, "timeout": 20})
            assert read.json()["freshness"]["waited"] == "reached"
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(15) == 0  # a clean stop after the blips
        # What the server said during the disk blip is not counted: the file-size limit
        # refuses its log's writes too, and a processor whose step needs no write (an
        # idle one) is back before the disk is, so which of its lines reach the log
        # varies. The blip itself was seen in /processors, /health and the 503s above.
        assert outage_lines(serve_log)[:2] == said
        assert 503 in till.statuses and till.retry_after == {"1"}
        assert set(till.statuses) == {201, 503}, "a blip answered otherwise (a 500?)"
        for checkout_id, token in till.receipts.items():
            [event] = store.read_stream(checkout_stream(checkout_id))  # recorded once
            assert decode_receipt(token).positions == {0: event.position}
        logged = store.read(0, 0, types=["CheckedOut"])
        assert sorted(event.stream for event in logged) == sorted(
            checkout_stream(checkout_id) for checkout_id in till.acknowledged
        )  # and nothing written that was not acknowledged
        report_equals_truth(store, till.acknowledged)
    finally:
        store.close()
