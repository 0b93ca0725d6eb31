"""``tillflow demo --serve``: the API and the dashboard over the demo's store while it runs.

The server shares the demo's event loop and store; the demo's runtime runs the processors
(the app runs none of its own), so the dashboard shows the very shop being verified. A
viewer token is made for the run and given in the dashboard's URL::

    demo (tills, truck, returns, processors) ──► store ◄── app (API, /events/report, /dashboard)
                                                             ▲ http://127.0.0.1:8000/dashboard/#token=…

After the verdict the server keeps serving until SIGINT (Ctrl-C) or SIGTERM; either signal
during the run stops the demo (nothing verified) and the server, cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import Final

import uvicorn

from tillflow.demos.shop import ShopDemoSettings, Snapshot, Verdict, run_shop_demo
from tillflow.engine import EventStore
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook

VIEWER_NAME: Final = "demo-viewer"
STARTUP_TIMEOUT: Final = 30.0
GRACEFUL_SHUTDOWN: Final = 3


class _SignalsLeftAlone(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to the demo (which stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (``0``: a free port). Raises ``OSError`` when
    the address is taken or not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serving(store: EventStore, sock: socket.socket) -> AsyncIterator[str]:
    """Serve the API and dashboard of ``store`` on ``sock`` (bound) in this event loop; yield
    the dashboard's URL with a new viewer token once it answers; stop it (open streams get
    ``GRACEFUL_SHUTDOWN`` seconds) on the way out. Raises ``RuntimeError`` when the server
    does not start within ``STARTUP_TIMEOUT`` seconds."""
    token, _ = TokenBook(store).create(VIEWER_NAME, Role.VIEWER)
    config = uvicorn.Config(
        create_app(store=store, run_processors=False),
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="asyncio",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        server_header=False,
    )
    server = _SignalsLeftAlone(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the demo's server did not start")
            await asyncio.sleep(0.02)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}/dashboard/#token={token}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


async def run_served(
    store: EventStore,
    settings: ShopDemoSettings,
    sock: socket.socket,
    announce: Callable[[str], None],
    tick: Callable[[Snapshot], None],
    finished: Callable[[Verdict], None],
) -> Verdict | None:
    """The demo with the server up: ``announce(url)`` once it answers, ``finished(verdict)``
    at the end, then serve until SIGINT or SIGTERM. ``None`` when a signal stopped the demo
    before its verdict. Errors of the demo (``TillflowError``) are raised after the server
    has stopped."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    try:
        async with serving(store, sock) as url:
            announce(url)
            demo = asyncio.create_task(run_shop_demo(store, settings, tick))
            await asyncio.wait({demo, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not demo.done():
                demo.cancel()
                await asyncio.gather(demo, return_exceptions=True)
                return None
            verdict = demo.result()
            finished(verdict)
            await stopped
            return verdict
    finally:
        stopped.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
