"""Cases 12–13 (``python -m bench --only http``): ``POST /checkouts`` through a real
``tillflow serve`` process, driven from separate load processes on the same machine.

::

    case                          what is timed                               target
    12 HTTP throughput            closed loop, N concurrent keep-alive        ≥ 3,000 checkouts/s
                                  connections: 201s per second                and 0 errors
    13 HTTP latency, open loop    1,000 checkouts/s at scheduled send times:  p99 < 50 ms
                                  response − scheduled time

Each repeat starts ``tillflow serve --workers 1`` (:data:`SERVE_WORKERS`: the HTTP in a
worker process, the processors in the supervising one) on a fresh SQLite file (durability
``full``: a 201 means the checkout is committed and synced) on a free loopback port,
creates a manager, a till and a viewer token with ``tillflow token create``, and seeds 200
products with a million units each through the API. The load comes from
:data:`LOAD_PROCESSES` spawned processes, each a bare HTTP/1.1 keep-alive client on uvloop (a
few tens of µs of CPU per request, where an ``httpx`` client costs several hundred: the load
generator must not be what is measured); their CPU use is measured and shown. Each checkout
has 1–5 lines and a unique, time-ordered id (``format_id(new_event_id())``).

After each phase the report must reflect every acknowledged checkout: ``GET /report`` with
``wait_for`` the receipt covering every 201's receipt must answer ``reached`` and its totals
must equal the 201s' (checkouts, units, revenue). A phase with an error, a non-201 or a
mismatch is a FAIL and its figures are shown as NOT TIMED.

Case 12's reference, in the same repeat, is ``tillflow serve`` with everything in one
process (closed loop only), on a fresh file of its own.

The latency is measured from each request's scheduled send time (no coordinated omission:
a request waiting for a free connection or a late send counts against the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import psutil
import uvloop

from bench.cases import Context, _median
from bench.report import CaseResult, rate
from bench.shop import percentile
from tillflow.engine import Receipt, format_id, new_event_id
from tillflow.service.receipt_tokens import decode_receipt, encode_receipt

THROUGHPUT_TARGET: Final = 3_000.0
LATENCY_TARGET_MS: Final = 50.0
LATENCY_RATE: Final = 1_000.0
SERVE_WORKERS: Final = 1
"""The measured server is ``tillflow serve --workers SERVE_WORKERS``: HTTP worker processes
beside the processors' (supervising) process. On this 2-core machine one worker does as
well as two (they share the cores with the processors and the load); the reference is
``tillflow serve`` in one process (the processors in it), measured in the same run."""
LOAD_PROCESSES: Final = 2
"""Load generators (each its own OS process and event loop); the work is split evenly."""
OPEN_LOOP_CONNECTIONS: Final = 64
"""Keep-alive connections opened up front for the open loop, per load process; more are
opened on demand, up to :data:`MOST_CONNECTIONS` (then requests wait for a free one, their
latency still counted from their scheduled time)."""
MOST_CONNECTIONS: Final = 512
PRODUCTS: Final = 200
STOCK: Final = 1_000_000
BASKETS: Final = 4_096
"""Distinct baskets (1–5 lines, 1–3 units each), drawn in turn; their ids are always new."""
TILLS: Final = 16
DEADLINE: Final = 30.0
"""Seconds for the server to start, the report to reflect a phase, a process to stop."""
TILLFLOW: Final = str(Path(sys.executable).parent / "tillflow")

Mode = Literal["closed", "open"]


# -- the workload ---------------------------------------------------------------------------


def price(index: int) -> int:
    return 100 + (index * 37) % 900


def product_id(index: int) -> str:
    return f"p-{index:03d}"


@dataclass(frozen=True)
class Basket:
    body: bytes
    """The ``"lines": [...]`` part of the JSON body."""
    units: int
    revenue: int


def baskets(seed: int) -> list[Basket]:
    chooser = random.Random(seed)
    made = []
    for _ in range(BASKETS):
        chosen = chooser.sample(range(PRODUCTS), chooser.randint(1, 5))
        lines = [(index, chooser.randint(1, 3)) for index in chosen]
        body = json.dumps(
            [{"product_id": product_id(index), "quantity": units} for index, units in lines],
            separators=(",", ":"),
        )
        made.append(
            Basket(
                body.encode(),
                sum(units for _, units in lines),
                sum(price(index) * units for index, units in lines),
            )
        )
    return made


# -- the load process -----------------------------------------------------------------------


@dataclass
class Tally:
    """What one load process saw in one phase (sent back to the parent)."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    """Milliseconds: from the send (closed loop) or the scheduled send (open loop)."""
    units: int = 0
    revenue: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    """Per lane, the furthest position any 201's receipt names."""
    tokens: list[str] = field(default_factory=list)
    late: float = 0.0
    """Open loop: the latest send after its scheduled time, ms."""
    started: float = 0.0
    finished: float = 0.0
    cpu: float = 0.0
    """CPU seconds of this process during the phase."""
    connections: int = 0

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(message)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: a request, then its response, in turn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def _token_of(body: bytes) -> str | None:
    start = body.find(b'"token":"')
    if start < 0:
        token = json.loads(body).get("receipt", {}).get("token")
        return token if isinstance(token, str) else None
    start += len(b'"token":"')
    return body[start : body.index(b'"', start)].decode("ascii")


class Checkouts:
    """The requests of one load process and what their responses said."""

    def __init__(self, host: str, port: int, token: str, seed: int, tally: Tally) -> None:
        self.host, self.port = host, port
        self.baskets = baskets(seed)
        self.tills = [f"till-{seed}-{number}".encode() for number in range(TILLS)]
        self.count = 0
        self.head = (
            f"POST /checkouts HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.tally = tally

    def request(self) -> tuple[bytes, Basket]:
        basket = self.baskets[self.count % BASKETS]
        till = self.tills[self.count % TILLS]
        self.count += 1
        checkout_id = format_id(new_event_id()).encode()
        body = b'{"checkout_id":"%s","till_id":"%s","lines":%s}' % (checkout_id, till, basket.body)
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body, basket

    async def connect(self) -> HttpConnection:
        self.tally.connections += 1
        return await HttpConnection.open(self.host, self.port)

    async def one(self, connection: HttpConnection | None, since: float) -> HttpConnection | None:
        """Send one checkout on ``connection`` (a new one if ``None``); record the outcome
        and the latency from ``since``. The connection, or ``None`` if it broke."""
        request, basket = self.request()
        tally = self.tally
        try:
            if connection is None:
                connection = await self.connect()
            status, body = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            tally.error(f"{type(error).__name__}: {error}")
            if connection is not None:
                connection.close()
            return None
        tally.latencies.append((time.monotonic() - since) * 1000)
        tally.statuses[status] += 1
        if status == 201:
            tally.units += basket.units
            tally.revenue += basket.revenue
            token = _token_of(body)
            if token is None:
                tally.error(f"201 without a receipt token: {body[:200]!r}")
            else:
                tally.tokens.append(token)
        elif sum(tally.statuses.values()) - tally.statuses[201] <= 5:
            tally.first_errors.append(f"{status}: {body[:300].decode(errors='replace')}")
        return connection


async def _closed_loop(
    checkouts: Checkouts, connections: list[HttpConnection], start: float, seconds: float
) -> None:
    end = start + seconds

    async def client(connection: HttpConnection | None) -> None:
        while time.monotonic() < end:
            connection = await checkouts.one(connection, time.monotonic())
        if connection is not None:
            connection.close()

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    await asyncio.gather(*(client(connection) for connection in connections))


async def _open_loop(
    checkouts: Checkouts,
    connections: list[HttpConnection],
    start: float,
    seconds: float,
    interval: float,
    offset: float,
) -> None:
    idle: asyncio.Queue[HttpConnection | None] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    opened = len(connections)
    tally = checkouts.tally
    tasks: set[asyncio.Task[None]] = set()

    async def send(scheduled: float) -> None:
        nonlocal opened
        if idle.empty() and opened < MOST_CONNECTIONS:
            opened += 1  # a new connection (opened by checkouts.one)
            connection = None
        else:
            connection = await idle.get()  # None: a broken one, to be replaced
        idle.put_nowait(await checkouts.one(connection, scheduled))

    count = max(1, math.floor(seconds / interval))
    for number in range(count):
        scheduled = start + offset + number * interval
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.late = max(tally.late, (time.monotonic() - scheduled) * 1000)
        task = asyncio.create_task(send(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    while not idle.empty():
        left = idle.get_nowait()
        if left is not None:
            left.close()


async def _phase(
    pipe: Connection, url: str, token: str, seed: int, mode: Mode, parameters: dict[str, float]
) -> Tally:
    host, port = url.removeprefix("http://").split(":")
    tally = Tally()
    checkouts = Checkouts(host, int(port), token, seed, tally)
    opened = int(parameters["connections"])
    connections = [await checkouts.connect() for _ in range(opened)]
    pipe.send("ready")
    start: float = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    cpu = time.process_time()
    if mode == "closed":
        await _closed_loop(checkouts, connections, start, parameters["seconds"])
    else:
        await _open_loop(
            checkouts,
            connections,
            start,
            parameters["seconds"],
            parameters["interval"],
            parameters["offset"],
        )
    tally.finished = time.monotonic()
    tally.started = start
    tally.cpu = time.process_time() - cpu
    receipt = Receipt(positions={}, streams={})
    for made in tally.tokens:
        receipt = receipt.merge(decode_receipt(made))
    tally.positions = dict(receipt.positions)
    tally.tokens = []
    return tally


def load_process(
    pipe: Connection, url: str, token: str, seed: int, mode: Mode, parameters: dict[str, float]
) -> None:
    """A load generator (the target of a spawned process): connect, say ``ready``, wait
    for the start time, run the phase, send back its :class:`Tally` (or an error)."""
    try:
        tally = uvloop.run(_phase(pipe, url, token, seed, mode, parameters))
        pipe.send(("ok", tally))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


# -- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    tokens: dict[str, str]
    log: Path
    database: Path
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """Other server processes started beside ``process`` (a ``tillflow worker``)."""

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def cpu(self) -> float:
        """CPU seconds of every server process so far (children of ``serve`` included)."""
        total = 0.0
        for pid in [self.process.pid, *(helper.pid for helper in self.helpers)]:
            try:
                found = psutil.Process(pid)
                for each in [found, *found.children(recursive=True)]:
                    times = each.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextlib.contextmanager
def serving(
    directory: Path | None, options: tuple[str, ...] = (), worker: bool = False
) -> Iterator[Server]:
    """``tillflow serve [options]`` on a fresh SQLite file and a free port, with a token
    per role (and, with ``worker``, a ``tillflow worker`` process beside it); stopped with
    SIGTERM afterwards."""
    with tempfile.TemporaryDirectory(prefix="tillflow-bench-http-", dir=directory) as name:
        database = Path(name) / "shop.db"
        port = _free_port()
        env = {
            **os.environ,
            "TILLFLOW_DATABASE": str(database),
            "TILLFLOW_HOST": "127.0.0.1",
            "TILLFLOW_PORT": str(port),
            "TILLFLOW_LOG_LEVEL": "warning",
        }
        tokens = {
            role: subprocess.run(
                [TILLFLOW, "token", "create", "--role", role, "--name", f"bench-{role}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=DEADLINE,
            ).stdout.strip()
            for role in ("manager", "till", "viewer")
        }
        log = Path(name) / "serve.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [TILLFLOW, "serve", *options], env=env, stdout=output, stderr=subprocess.STDOUT
            )
            helpers = []
            if worker:
                helpers.append(
                    subprocess.Popen(
                        [TILLFLOW, "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
                    )
                )
        server = Server(process, f"http://127.0.0.1:{port}", tokens, log, database, helpers)
        try:
            _wait_until_healthy(server)
            yield server
        finally:
            for running in [process, *helpers]:
                if running.poll() is None:
                    running.send_signal(signal.SIGTERM)
            for running in [process, *helpers]:
                try:
                    running.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    running.kill()
                    running.wait(DEADLINE)


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tillflow serve exited: {server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"tillflow serve did not answer /health in {DEADLINE:g} s")


async def _seed(server: Server) -> None:
    """The catalog (one stream: one product at a time), then a generous delivery of every
    product (a few at a time)."""
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.auth("manager"), timeout=DEADLINE
    ) as client:
        for index in range(PRODUCTS):
            added = await client.post(
                "/catalog",
                json={
                    "product_id": product_id(index),
                    "name": f"Product {index}",
                    "price": price(index),
                },
            )
            if added.status_code != 201:
                raise RuntimeError(f"seeding the catalog: {added.status_code} {added.text}")

        async def deliver(index: int) -> None:
            async with gate:
                delivered = await client.post(
                    f"/stock/{product_id(index)}/deliveries",
                    json={"quantity": STOCK, "delivery_id": f"seed-{index}"},
                )
                if delivered.status_code != 201:
                    raise RuntimeError(f"seeding stock: {delivered.status_code} {delivered.text}")

        await asyncio.gather(*(deliver(index) for index in range(PRODUCTS)))


# -- a phase: the load processes against the server, then the report's check -----------------


@dataclass
class Phase:
    mode: Mode
    status: str
    """``ok``, or what went wrong (errors, non-201s, mismatch)."""
    detail: str
    ok: int
    errors: int
    seconds: float
    latencies: list[float]
    late: float
    load_cpu: float
    """Load processes' CPU seconds in all, during the phase."""
    server_cpu: float
    drain: float
    """Seconds from the phase's end until the report reflected every 201."""
    connections: int

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def load_core(self) -> float:
        """The busiest load process's CPU use, as a fraction of one core."""
        return self.load_cpu / LOAD_PROCESSES / self.seconds if self.seconds else 0.0


@dataclass
class Expected:
    checkouts: int = 0
    units: int = 0
    revenue: int = 0
    positions: dict[int, int] = field(default_factory=dict)


def _run_load(
    server: Server, mode: Mode, parameters: list[dict[str, float]], seed: int
) -> list[Tally]:
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for number, share in enumerate(parameters):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=load_process,
            args=(theirs, server.url, server.tokens["till"], seed * 100 + number, mode, share),
            name=f"bench-http-load-{number}",
        )
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    try:
        for pipe in pipes:
            if not pipe.poll(DEADLINE):
                raise RuntimeError("a load process did not get ready")
            message = _receive(pipe)
            if message != "ready":
                raise RuntimeError(f"a load process failed: {message[1]}")
        start = time.monotonic() + 0.2
        for pipe in pipes:
            pipe.send(start)
        tallies = []
        longest = max(share["seconds"] for share in parameters) + DEADLINE
        for pipe in pipes:
            if not pipe.poll(longest):
                raise RuntimeError("a load process did not finish")
            kind, payload = _receive(pipe)
            if kind != "ok":
                raise RuntimeError(f"a load process failed: {payload}")
            tallies.append(payload)
        return tallies
    finally:
        for process in processes:
            process.join(DEADLINE)
            if process.is_alive():
                process.kill()


def _receive(pipe: Connection) -> Any:
    try:
        return pipe.recv()
    except EOFError:
        raise RuntimeError("a load process died (see its traceback above)") from None


def _check_report(server: Server, expected: Expected) -> tuple[float, str | None]:
    """Wait until the report reflects every acknowledged checkout; the seconds it took and
    ``None``, or a description of what is wrong."""
    started = time.monotonic()
    token = encode_receipt(Receipt(positions=expected.positions, streams={}))
    params: dict[str, str | float] = {"timeout": DEADLINE}
    if expected.positions:
        params["wait_for"] = token
    answer = httpx.get(
        f"{server.url}/report",
        params=params,
        headers=server.auth("viewer"),
        timeout=DEADLINE + 10,
    )
    took = time.monotonic() - started
    if answer.status_code != 200:
        return took, f"GET /report: {answer.status_code} {answer.text[:300]}"
    report = answer.json()
    waited = report["freshness"]["waited"]
    if expected.positions and waited != "reached":
        return took, (
            f"the report did not reach every 201's receipt ({waited}) in {DEADLINE:g} s"
            f"{_failures(server)}"
        )
    totals = report["totals"]
    seen = (totals["checkouts"], totals["units_sold"], totals["revenue"])
    wanted = (expected.checkouts, expected.units, expected.revenue)
    if seen != wanted:
        return took, (
            f"MISMATCH: the report has checkouts, units, revenue {seen}, the 201s say {wanted}"
        )
    return took, None


def _failures(server: Server) -> str:
    """What ``GET /processors`` says about failed processors (for a FAIL's detail)."""
    try:
        status = httpx.get(f"{server.url}/processors", headers=server.auth("viewer"), timeout=5)
        failed = [row for row in status.json()["processors"] if row.get("state") == "failed"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return f"; GET /processors: {error!r}"
    return "".join(f"; {row['processor']} failed: {row.get('error')}" for row in failed)


def run_phase(server: Server, mode: Mode, expected: Expected, seed: int, **knobs: float) -> Phase:
    """One closed-loop (``clients``, ``seconds``) or open-loop (``rate``, ``seconds``)
    phase, then the report's check; ``expected`` grows by what was acknowledged."""
    if mode == "closed":
        clients = int(knobs["clients"])
        shares = [
            {
                "connections": float(
                    clients // LOAD_PROCESSES + (number < clients % LOAD_PROCESSES)
                ),
                "seconds": knobs["seconds"],
            }
            for number in range(LOAD_PROCESSES)
        ]
    else:
        interval = LOAD_PROCESSES / knobs["rate"]
        shares = [
            {
                "connections": float(OPEN_LOOP_CONNECTIONS),
                "seconds": knobs["seconds"],
                "interval": interval,
                "offset": number / knobs["rate"],
            }
            for number in range(LOAD_PROCESSES)
        ]
    cpu = server.cpu()
    tallies = _run_load(server, mode, shares, seed)
    server_cpu = server.cpu() - cpu
    start = min(tally.started for tally in tallies)
    finished = max(tally.finished for tally in tallies)
    statuses: Counter[int] = Counter()
    for tally in tallies:
        statuses.update(tally.statuses)
        expected.checkouts += tally.statuses[201]
        expected.units += tally.units
        expected.revenue += tally.revenue
        for lane, position in tally.positions.items():
            expected.positions[lane] = max(position, expected.positions.get(lane, 0))
    errors = sum(tally.errors for tally in tallies)
    drain, problem = _check_report(server, expected)
    others = {status: count for status, count in statuses.items() if status != 201}
    first = [message for tally in tallies for message in tally.first_errors][:3]
    status, detail = "ok", ""
    if problem is not None:
        status, detail = "wrong", problem
    elif errors or others:
        status = "errors"
        detail = f"{errors} transport errors, other statuses {others}: {'; '.join(first)}"
    if server.process.poll() is not None:
        status, detail = "crashed", f"tillflow serve exited: {server.output()}"
    return Phase(
        mode=mode,
        status=status,
        detail=detail,
        ok=statuses[201],
        errors=errors + sum(others.values()),
        seconds=finished - start,
        latencies=[latency for tally in tallies for latency in tally.latencies],
        late=max(tally.late for tally in tallies),
        load_cpu=sum(tally.cpu for tally in tallies),
        server_cpu=server_cpu,
        drain=drain,
        connections=sum(tally.connections for tally in tallies),
    )


@dataclass
class HttpRun:
    closed: Phase
    opened: Phase | None
    """``None`` when the run had no open loop."""


def http_run(
    directory: Path | None,
    clients: int,
    closed_seconds: float,
    open_rate: float,
    open_seconds: float,
    seed: int = 1,
    profile: Path | None = None,
    options: tuple[str, ...] = (),
    worker: bool = False,
) -> HttpRun:
    """One repeat: a fresh server (``tillflow serve [options]``, and with ``worker`` a
    ``tillflow worker`` beside it), seeded; the closed loop, then the open loop (none if
    ``open_seconds`` is 0). With
    ``profile``, py-spy records the server's processes during both phases (raw folded
    stacks; a worker's in ``<profile>.worker``)."""
    with serving(directory, options, worker) as server:
        try:
            asyncio.run(_seed(server))
        except RuntimeError as error:
            raise RuntimeError(f"{error}; the server said: {server.output()}") from error
        expected = Expected()
        _, problem = _check_report(server, expected)
        if problem is not None:
            raise RuntimeError(f"after seeding: {problem}")
        with _py_spy(server, profile):
            closed = run_phase(
                server, "closed", expected, seed, clients=clients, seconds=closed_seconds
            )
            opened = None
            if open_seconds > 0:
                opened = run_phase(
                    server, "open", expected, seed + 50, rate=open_rate, seconds=open_seconds
                )
        return HttpRun(closed, opened)


@contextlib.contextmanager
def _py_spy(server: Server, output: Path | None) -> Iterator[None]:
    if output is None:
        yield
        return
    spy = str(Path(sys.executable).parent / "py-spy")
    options = ["--threads", "--subprocesses", "--nonblocking", "--format", "raw", "--rate", "100"]
    targets = [(output, server.process.pid)]
    targets += [(output.with_suffix(".worker"), helper.pid) for helper in server.helpers]
    recorders = [
        subprocess.Popen(
            [spy, "record", *options, "--output", str(path), "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
        )
        for path, pid in targets
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output and stops
        for recorder in recorders:
            recorder.wait(DEADLINE)


# -- the cases ------------------------------------------------------------------------------


def _phase_data(phases: list[Phase]) -> dict[str, Any]:
    return {
        "statuses": [phase.status for phase in phases],
        "details": [phase.detail for phase in phases],
        "acknowledged": [phase.ok for phase in phases],
        "errors": [phase.errors for phase in phases],
        "seconds": [phase.seconds for phase in phases],
        "rates": [phase.rate for phase in phases],
        "p50_ms": [percentile(phase.latencies, 0.5) for phase in phases],
        "p99_ms": [percentile(phase.latencies, 0.99) for phase in phases],
        "max_ms": [max(phase.latencies, default=math.nan) for phase in phases],
        "late_send_ms": [phase.late for phase in phases],
        "load_cpu_seconds": [phase.load_cpu for phase in phases],
        "server_cpu_seconds": [phase.server_cpu for phase in phases],
        "drain_seconds": [phase.drain for phase in phases],
        "connections": [phase.connections for phase in phases],
    }


def _failed(phases: list[Phase]) -> str | None:
    bad = [phase for phase in phases if phase.status != "ok"]
    if not bad:
        return None
    statuses = ", ".join(sorted({phase.status for phase in bad})).upper()
    return f"{len(bad)} of {len(phases)} runs {statuses}: {bad[0].detail}"


def _cpu_notes(phases: list[Phase]) -> str:
    server = _median([phase.server_cpu / max(phase.ok, 1) * 1e6 for phase in phases])
    load = _median([phase.load_core for phase in phases])
    return (
        f"server CPU {server:.0f} µs/checkout; load generator {LOAD_PROCESSES} processes at "
        f"{load:.0%} of a core each"
    )


def http(context: Context) -> list[CaseResult]:
    sizes = context.sizes
    runs: list[HttpRun] = []
    references: list[HttpRun] = []
    workers = ("--workers", str(SERVE_WORKERS))
    for repeat in range(context.repeats):
        context.progress(
            f"HTTP load, run {repeat + 1}/{context.repeats}: tillflow serve --workers "
            f"{SERVE_WORKERS}, {sizes.http_clients} clients for {sizes.http_seconds:g} s, then "
            f"{LATENCY_RATE:,.0f}/s open loop for {sizes.http_latency_seconds:g} s; then "
            f"tillflow serve in one process, {sizes.http_clients} clients"
        )
        runs.append(
            http_run(
                context.directory,
                sizes.http_clients,
                sizes.http_seconds,
                LATENCY_RATE,
                sizes.http_latency_seconds,
                seed=repeat + 1,
                options=workers,
            )
        )
        references.append(
            http_run(
                context.directory,
                sizes.http_clients,
                sizes.http_seconds,
                LATENCY_RATE,
                0.0,
                seed=repeat + 1,
            )
        )
    closed = [run.closed for run in runs]
    opened = [run.opened for run in runs if run.opened is not None]
    alone = [run.closed for run in references]
    alone_problem = _failed(alone)
    alone_rate = _median([phase.rate for phase in alone])
    reference = (
        "one process: NOT TIMED"
        if alone_problem is not None
        else f"one process {rate(alone_rate, '/s')}"
    )

    throughput_problem = _failed(closed)
    checkouts = _median([phase.rate for phase in closed])
    figure = rate(checkouts, " checkouts/s")
    notes = (
        f"{sizes.http_clients} keep-alive connections, {sizes.http_seconds:g} s per run; "
        f"{statistics.median(phase.ok for phase in closed):,.0f} checkouts (1–5 lines) per "
        f"run, 0 errors, every one in the report "
        f"{_median([phase.drain for phase in closed]) * 1000:,.0f} ms after the last; "
        f"latency p50 {_median([percentile(p.latencies, 0.5) for p in closed]):.1f} ms, "
        f"p99 {_median([percentile(p.latencies, 0.99) for p in closed]):.1f} ms; "
        f"{_cpu_notes(closed)}"
    )
    if throughput_problem is not None:
        figure, notes = "NOT TIMED", throughput_problem
    notes += (
        f"; server: tillflow serve --workers {SERVE_WORKERS} (HTTP in {SERVE_WORKERS} "
        "process(es), the processors in the supervising one); reference: tillflow serve, "
        "everything in one process, same run"
    )
    if alone_problem is not None:
        notes += f"; reference: {alone_problem}"
    throughput = CaseResult(
        case=f"12 HTTP checkouts, {sizes.http_clients} clients",
        tillflow=figure,
        reference=reference,
        ratio=checkouts / alone_rate
        if throughput_problem is None and alone_problem is None and alone_rate
        else None,
        target=f"≥ {rate(THROUGHPUT_TARGET, '/s')}, 0 errors",
        passed=throughput_problem is None and checkouts >= THROUGHPUT_TARGET,
        notes=notes,
        data={**_phase_data(closed), "one_process": _phase_data(alone)},
    )

    latency_problem = _failed(opened)
    p50 = _median([percentile(phase.latencies, 0.5) for phase in opened])
    p99 = _median([percentile(phase.latencies, 0.99) for phase in opened])
    most = _median([max(phase.latencies, default=math.nan) for phase in opened])
    figure = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    notes = (
        f"from the scheduled send; max {most:.1f} ms; "
        f"{statistics.median(phase.ok for phase in opened):,.0f} checkouts per run at "
        f"{_median([phase.rate for phase in opened]):,.0f}/s, 0 errors, every one in the "
        f"report {_median([phase.drain for phase in opened]) * 1000:,.0f} ms after the last; "
        f"sends at most {max(phase.late for phase in opened):.1f} ms late; "
        f"{_cpu_notes(opened)}"
    )
    if latency_problem is not None:
        figure, notes = "NOT TIMED", latency_problem
    notes += f"; server: tillflow serve --workers {SERVE_WORKERS}"
    latency = CaseResult(
        case=f"13 HTTP latency, {LATENCY_RATE:,.0f}/s open loop",
        tillflow=figure,
        reference="—",
        ratio=None,
        target=f"p99 < {LATENCY_TARGET_MS:g} ms",
        passed=latency_problem is None and p99 < LATENCY_TARGET_MS,
        notes=notes,
        data=_phase_data(opened),
    )
    return [throughput, latency]


HTTP_CASES: Final = (http,)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.http_load``: one run with its own sizes, optionally profiled."""
    import argparse  # noqa: PLC0415 - only for this entry point

    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="closed loop")
    parser.add_argument("--rate", type=float, default=LATENCY_RATE, help="open loop, /s")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="open loop")
    parser.add_argument("--py-spy", type=Path, metavar="PATH", help="profile the server here")
    parser.add_argument("--dir", type=Path, metavar="DIR", help="where the database goes")
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for `tillflow serve` (repeat; e.g. --serve-option=--workers=2)",
    )
    parser.add_argument(
        "--worker", action="store_true", help="also run a `tillflow worker` process"
    )
    arguments = parser.parse_args(argv)
    run = http_run(
        arguments.dir,
        arguments.clients,
        arguments.seconds,
        arguments.rate,
        arguments.latency_seconds,
        profile=arguments.py_spy,
        options=tuple(arguments.serve_option),
        worker=arguments.worker,
    )
    for phase in (run.closed, run.opened):
        if phase is None:
            continue
        print(
            f"{phase.mode:6} {phase.status}: {phase.ok:,} acknowledged in {phase.seconds:.1f} s "
            f"= {phase.rate:,.0f}/s, {phase.errors} errors; latency p50 "
            f"{percentile(phase.latencies, 0.5):.1f} ms, p99 "
            f"{percentile(phase.latencies, 0.99):.1f} ms, max "
            f"{max(phase.latencies, default=math.nan):.1f} ms (sends up to {phase.late:.1f} ms "
            f"late); report drained "
            f"{phase.drain * 1000:.0f} ms after; server CPU "
            f"{phase.server_cpu / max(phase.ok, 1) * 1e6:.0f} µs/checkout; load generator "
            f"{phase.load_core:.0%} of a core per process; {phase.connections} connections "
            f"{phase.detail}"
        )
    print(f"load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
