"""Serving an app for tests: in-process over ASGI (:class:`Api`), or on a real socket with
uvicorn in a thread (:class:`ServerThread`), for streams and fuzzing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tillflow.engine import EventStore, SqliteEventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.service.settings import Settings
from tillflow.shop.sale.payments import PaymentTerminal


@dataclass
class Api:
    """A client of one app, with a token per role."""

    client: httpx.AsyncClient
    store: EventStore
    tokens: dict[Role, str]
    app: FastAPI

    async def settled_heads(self) -> dict[int, int]:
        """The lane heads once every processor has caught up (processors emit events of
        their own: compare settled heads to see that a request wrote nothing)."""
        services = self.app.state.services
        await services.runtime.drain(timeout=10)
        return self.store.heads()

    def auth(self, role: Role | str) -> dict[str, str]:
        """The Authorization header of ``role``'s token (or of a raw token string)."""
        token = self.tokens[Role(role)] if role in set(Role) else str(role)
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, role: Role | str = Role.VIEWER, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(role), **kwargs)

    async def post(
        self, path: str, body: Any = None, role: Role | str = Role.MANAGER, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.auth(role), **kwargs.pop("headers", {})}
        return await self.client.post(path, json=body, headers=headers, **kwargs)


@asynccontextmanager
async def serving(
    store: EventStore,
    tokens: dict[Role, str] | None = None,
    *,
    fast_checkouts: bool = True,
    terminal: PaymentTerminal | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[Api]:
    """The app over ASGI on the open ``store``, processors running, with a token per role
    (new ones, unless ``tokens`` from an earlier serving of the store are given), configured
    by ``settings`` if given."""
    if tokens is None:
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
    app = create_app(settings, store=store, fast_checkouts=fast_checkouts, terminal=terminal)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://tillflow.test") as client,
    ):
        yield Api(client, store, tokens, app)


@asynccontextmanager
async def served(
    database: Path,
    tokens: dict[Role, str] | None = None,
    *,
    fast_checkouts: bool = True,
    terminal: PaymentTerminal | None = None,
) -> AsyncIterator[Api]:
    """:func:`serving` on the SQLite file ``database``, opened for the test."""
    with SqliteEventStore(database, registry=service_registry(), durability="off") as store:
        async with serving(store, tokens, fast_checkouts=fast_checkouts, terminal=terminal) as api:
            yield api


def free_socket() -> socket.socket:
    """A listening-ready socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """``app`` served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.socket = free_socket()
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
        if self.thread.is_alive():
            raise RuntimeError("the test server did not stop within 10 s")


TILLFLOW = str(Path(sys.executable).parent / "tillflow")
DEADLINE = 15.0


def wait_until_healthy(
    url: str, server: subprocess.Popen[str], log: Path, timeout: float = DEADLINE
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited: {log.read_text()}"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"the server did not answer /health in time: {log.read_text()}")


def serve_env(database: Path, **settings: str) -> tuple[str, dict[str, str]]:
    """The URL of a free loopback port, and the environment that has ``tillflow serve``
    listen there over ``database`` (``settings``: more ``TILLFLOW_*`` variables)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        "TILLFLOW_DATABASE": str(database),
        "TILLFLOW_PORT": str(port),
        "TILLFLOW_HOST": "127.0.0.1",
        "TILLFLOW_LOG_LEVEL": "warning",
        **settings,
    }
    return f"http://127.0.0.1:{port}", env


@contextmanager
def stopped_at_end(process: subprocess.Popen[Any], log: Path) -> Iterator[None]:
    """SIGTERM to ``process`` when the block ends, and it must exit 0 (``log``: its output,
    shown if not); one that has not exited within :data:`DEADLINE` is killed, and that
    raises."""
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(DEADLINE)
            raise
    assert code == 0, log.read_text()


@contextmanager
def serve_process(url: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    """``tillflow serve`` as a process (its output in ``log``), once it answers ``/health``;
    at the end SIGTERM, and it must exit 0."""
    with (
        log.open("w") as output,
        subprocess.Popen(
            [TILLFLOW, "serve"], env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        ) as server,
        stopped_at_end(server, log),
    ):
        wait_until_healthy(url, server, log)
        yield server
