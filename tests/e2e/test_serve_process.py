"""``tillflow serve`` as a real process on a free port: configured by environment, used
over HTTP, stopped with SIGTERM — with a live stream open — and exiting 0 within a
deadline. And ``serve --no-processors`` with a ``tillflow worker`` doing the processing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from tests.e2e.servers import free_socket
from tillflow.shop.assembly import shop_processors

TILLFLOW = str(Path(sys.executable).parent / "tillflow")
DEADLINE = 15.0
START_DEADLINE = 90.0
"""How long a server may take to answer /health: ~2.2 s on a quiet machine for `serve
--workers 2` (three processes importing the app), over 15 s at a load of 12 on two cores.
Only a bound on waiting: the test goes on as soon as it answers."""


def environment(database: Path | str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TILLFLOW_DATABASE": str(database),
        "TILLFLOW_PORT": str(port),
        "TILLFLOW_HOST": "127.0.0.1",
        "TILLFLOW_LOG_LEVEL": "warning",
    }


def token(env: dict[str, str], role: str, name: str) -> str:
    made = subprocess.run(
        [TILLFLOW, "token", "create", "--role", role, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    )
    return made.stdout.strip()


def free_port() -> int:
    sock = free_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(DEADLINE)


def wait_until_healthy(url: str, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(
                f"the server exited: {child.stdout.read() if child.stdout else ''}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not answer /health in time")


def stacks(pid: int) -> str:
    """The Python stacks of ``pid`` and its children (``py-spy dump``; empty without it)."""
    beside = Path(sys.executable).with_name("py-spy")  # the venv's, when not on PATH
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return ""
    try:
        pids = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return ""
    dumps = [
        subprocess.run(
            [spy, "dump", "--pid", str(each)],
            check=False,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        ).stdout
        for each in pids
    ]
    return "\n".join(dumps)


def stop(child: subprocess.Popen[str]) -> tuple[int, float, str]:
    """SIGTERM, then the exit code, the seconds until exit and the output. The output is
    read while waiting: a child blocked writing to a full pipe never exits."""
    started = time.monotonic()
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.append(child.stdout.read() if child.stdout else ""), daemon=True
    )
    reader.start()
    child.send_signal(signal.SIGTERM)
    try:
        code = child.wait(DEADLINE)
    except subprocess.TimeoutExpired:  # say what it and its workers were doing
        dump = stacks(child.pid)
        child.kill()
        reader.join(DEADLINE)
        raise AssertionError(
            f"no exit within {DEADLINE} s of SIGTERM:\n{''.join(output)}\n{dump}"
        ) from None
    took = time.monotonic() - started
    reader.join(DEADLINE)
    return code, took, "".join(output)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ring_up(client: httpx.Client, manager: str, till: str) -> str:
    added = client.post(
        "/catalog",
        json={"product_id": "apple", "name": "Apple", "price": 120},
        headers=bearer(manager),
    )
    assert added.status_code == 201, added.text
    sold = client.post(
        "/checkouts",
        json={
            "checkout_id": "c-1",
            "till_id": "t",
            "lines": [{"product_id": "apple", "quantity": 3}],
        },
        headers=bearer(till),
    )
    assert sold.status_code == 201, sold.text
    receipt: str = sold.json()["receipt"]["token"]
    return receipt


def test_serve_answers_over_http_and_stops_cleanly_on_sigterm_with_a_stream_open(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = environment(tmp_path / "shop.db", port)
    manager, till, viewer = (token(env, role, role) for role in ("manager", "till", "viewer"))
    url = f"http://127.0.0.1:{port}"
    with process([TILLFLOW, "serve"], env) as server:
        wait_until_healthy(url, server)
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            receipt = ring_up(client, manager, till)
            report = client.get(
                "/report", params={"wait_for": receipt, "timeout": 10}, headers=bearer(viewer)
            )
            assert report.json()["freshness"]["waited"] == "reached"
            assert report.json()["rows"][0]["units_sold"] == 3
            assert client.get("/report").status_code == 401
            with client.stream("GET", "/events/report", headers=bearer(viewer)) as stream:
                lines = stream.iter_lines()
                assert next(line for line in lines if line.startswith("data:"))
                code, took, output = stop(server)
                rest = list(lines)  # the stream ends cleanly: no error reading to its end
    assert "event: shutdown" in rest
    assert code == 0, output
    assert took < 10, took
    assert "Traceback" not in output and "ERROR" not in output, output


def test_a_worker_processes_what_a_server_without_processors_records(tmp_path: Path) -> None:
    port = free_port()
    env = environment(tmp_path / "shop.db", port)
    manager, till, viewer = (token(env, role, role) for role in ("manager", "till", "viewer"))
    url = f"http://127.0.0.1:{port}"
    with process([TILLFLOW, "serve", "--no-processors"], env) as server:
        wait_until_healthy(url, server)
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            receipt = ring_up(client, manager, till)
            before = client.get("/processors", headers=bearer(viewer)).json()
            assert {row["state"] for row in before["processors"]} == {"elsewhere"}
            with process([TILLFLOW, "worker"], {**env, "TILLFLOW_GC_THRESHOLD": "12345"}) as worker:
                report = client.get(
                    "/report", params={"wait_for": receipt, "timeout": 10}, headers=bearer(viewer)
                )
                assert report.json()["freshness"]["waited"] == "reached"
                assert report.json()["rows"][0]["stock_left"] == -3
                worker_code, _, worker_output = stop(worker)
            assert worker_code == 0, worker_output
            names = ", ".join(sorted(processor.name for processor in shop_processors()))
            assert f"running {names}" in worker_output
            assert "collector threshold 12,345" in worker_output  # the setting was applied
        server_code, _, output = stop(server)
    assert server_code == 0, output
