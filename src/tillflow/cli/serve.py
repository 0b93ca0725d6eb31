"""Running the shop: ``serve`` (the HTTP API, with the processors in the same process by
default; with ``--workers N``, N HTTP processes and the processors in the supervising one:
:mod:`tillflow.cli.supervisor`) and ``worker`` (processors only, against a store another
process serves)."""

from __future__ import annotations

import asyncio
import copy
import functools
import gc
import logging
import signal
import socket
import threading
from types import FrameType
from typing import Annotated, Any

import typer
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from tillflow.cli.common import (
    DatabaseOption,
    console,
    errors,
    fail,
    open_existing,
    statistics_table,
)
from tillflow.cli.leased import DEFAULT_TTL, keeping, lease_keeper, leased
from tillflow.cli.stalls import StallAfterOption, StallNotices
from tillflow.cli.supervisor import Supervisor, listen, stop_all, when_orphaned
from tillflow.engine import EventStore, Runtime, State, TillflowError
from tillflow.engine.leasing import LeaseKeeper
from tillflow.engine.stalls import DEFAULT_STALL_AFTER
from tillflow.http import create_app
from tillflow.service.access_tokens import TokenBook
from tillflow.service.bootstrap import (
    ConfigurationError,
    describe_database,
    open_store,
    service_registry,
)
from tillflow.service.collector import DEFAULT_THRESHOLD, MOST_THRESHOLD, tune_collector
from tillflow.service.latency_tuning import tuned_for_latency
from tillflow.service.settings import Settings, load_settings
from tillflow.shop.assembly import Shop

GRACEFUL_SHUTDOWN = 5
"""Seconds ``serve`` lets open requests and live streams finish once asked to stop."""


def _log_config(level: str) -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tillflow"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    # the pool's every failed reconnection; tillflow says once when the database goes and
    # once when it is back
    config["loggers"]["psycopg.pool"] = {"level": "ERROR"}
    return config


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM / SIGINT outside uvicorn's own handling (before it starts, and the signal it
    re-raises after its graceful shutdown): stop with exit code 0."""
    raise SystemExit(0)


def serve(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="SQLite file (created if missing) or postgresql:// URL (?lanes=N: the lane "
            "count of a new database). Default: env TILLFLOW_DATABASE, else tillflow.db.",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (env TILLFLOW_HOST; 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (env TILLFLOW_PORT; 8000).")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="critical, error, warning, info or debug (env TILLFLOW_LOG_LEVEL)."),
    ] = None,
    processors: Annotated[
        bool,
        typer.Option(
            "--processors/--no-processors",
            help="Run the shop's processors in this process, or leave them to "
            "`tillflow worker` processes.",
        ),
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option(
            help="HTTP worker processes (env TILLFLOW_WORKERS; 0: serve in this process). "
            "N ≥ 1: N processes share the port and the SQLite file, and the processors run "
            "in this supervising process.",
        ),
    ] = None,
    gc_threshold: Annotated[
        int | None,
        typer.Option(
            help="Container allocations between two young collections of Python's garbage "
            "collector (env TILLFLOW_GC_THRESHOLD; 50000; 0 keeps Python's 700).",
        ),
    ] = None,
    stall_after: Annotated[
        float | None,
        typer.Option(
            help="Seconds a processor may be behind without progress before it shows as "
            "stalled (env TILLFLOW_STALL_AFTER; 30).",
        ),
    ] = None,
    socket_fd: Annotated[
        int | None,
        typer.Option(hidden=True, help="Serve this inherited listening socket (workers)."),
    ] = None,
    lifeline_fd: Annotated[
        int | None,
        typer.Option(hidden=True, help="Stop when this inherited pipe ends (workers)."),
    ] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="PostgreSQL: seconds a lane's lease lasts unless renewed (every third); "
            "the processors here share the lanes with `tillflow worker` processes.",
        ),
    ] = DEFAULT_TTL,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), the live stream and /metrics. Every request
    needs a bearer token: make one with `tillflow token create`. Stops cleanly (exit 0)
    on SIGTERM or Ctrl-C."""
    try:
        settings = load_settings(
            database=database,
            host=host,
            port=port,
            log_level=log_level,
            workers=workers,
            gc_threshold=gc_threshold,
            stall_after=stall_after,
        )
        if settings.workers > 0 and socket_fd is None and settings.database.startswith("memory"):
            raise ConfigurationError(
                f"--workers {settings.workers}: HTTP workers share an SQLite file; a memory "
                "store lives in one process"
            )
        store = open_store(
            settings.database, registry=service_registry(), busy_timeout=settings.busy_timeout
        )
    except (ConfigurationError, TillflowError) as error:
        raise fail(str(error), 2) from None
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    tune_collector(settings.gc_threshold)
    try:
        if settings.workers > 0 and socket_fd is None:
            raise typer.Exit(_supervise(settings, store, processors, lease_ttl))
        if socket_fd is None:
            _announce(settings, store, processors)
        app = create_app(
            settings,
            store=store,
            run_processors=processors,
            run_runtime=functools.partial(leased, ttl=lease_ttl),
        )
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=_log_config(settings.log_level),
            access_log=False,  # one line per request comes from the app, without query strings
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            server_header=False,
        )
        server = uvicorn.Server(config)
        with tuned_for_latency():
            if socket_fd is None:
                server.run()
            else:
                _serve_socket(server, socket_fd, lifeline_fd)
    finally:
        store.close()


def _announce(settings: Settings, store: EventStore, processors: bool) -> None:
    """The start-up line (and a hint when there is no token yet)."""
    if settings.workers > 0:
        where = "in this supervising process" if processors else "in `tillflow worker` processes"
        how = f"{settings.workers} HTTP worker{'s' if settings.workers > 1 else ''} · "
    else:
        where = "in this process" if processors else "in `tillflow worker` processes"
        how = ""
    console.print(
        f"[bold]tillflow[/] serving http://{settings.host}:{settings.port} · {how}database "
        f"{describe_database(settings.database)} · processors {where} · dashboard at "
        "/dashboard · API docs at /docs",
        highlight=False,
        soft_wrap=True,
    )
    if not any(token.active for token in TokenBook(store).tokens()):
        console.print(
            "no tokens yet: make one with `tillflow token create --role manager --name NAME`",
            highlight=False,
        )


def _supervise(settings: Settings, store: EventStore, processors: bool, lease_ttl: float) -> int:
    """``settings.workers`` HTTP workers on one socket, the processors here (sharing the
    lanes by leases on PostgreSQL); the exit code."""
    try:
        listener = listen(settings.host, settings.port)
    except OSError as error:
        raise fail(f"cannot listen on {settings.host}:{settings.port}: {error}", 1) from None
    _announce(settings, store, processors)
    runtime = Shop(store).runtime() if processors else None
    if runtime is not None:
        runtime.stall_after = settings.stall_after
    keeper = None if runtime is None else lease_keeper(store, runtime, lease_ttl)
    supervisor = Supervisor(settings, listener, settings.workers, runtime, keeping(keeper))
    try:
        supervisor.start()
        return asyncio.run(supervisor.run())
    finally:
        stop_all(supervisor.workers)  # on any way out, no worker is left behind
        supervisor.close()


def _serve_socket(server: uvicorn.Server, socket_fd: int, lifeline_fd: int | None) -> None:
    """An HTTP worker: serve the inherited socket until asked to stop or, with a lifeline,
    until the supervisor is gone (however it went, even SIGKILL): then the worker stops
    listening at once and is gone within ``ORPHAN_GRACE`` seconds."""
    stopped = threading.Event()
    if lifeline_fd is not None:
        when_orphaned(lifeline_fd, lambda: setattr(server, "should_exit", True), stopped)
    try:
        server.run(sockets=[socket.socket(fileno=socket_fd)])
    finally:
        stopped.set()


def worker(
    database: DatabaseOption = "tillflow.db",
    run: Annotated[
        list[str] | None,
        typer.Option("--run", help="A processor to run (repeat the option); default: all of them."),
    ] = None,
    gc_threshold: Annotated[
        int,
        typer.Option(
            envvar="TILLFLOW_GC_THRESHOLD",
            min=0,
            max=MOST_THRESHOLD,
            help="Container allocations between two young collections of Python's garbage "
            "collector (env TILLFLOW_GC_THRESHOLD; 0 keeps Python's 700).",
        ),
    ] = DEFAULT_THRESHOLD,
    lease_ttl: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="PostgreSQL: seconds a lane's lease lasts unless renewed (every third).",
        ),
    ] = DEFAULT_TTL,
    stall_after: StallAfterOption = DEFAULT_STALL_AFTER,
) -> None:
    """Run the shop's processors (inventory, then reporting behind its barrier) against a
    store that `tillflow serve --no-processors` (or anything else) writes to. Stops
    cleanly on SIGTERM or Ctrl-C; exits 1 if a processor fails. On PostgreSQL, any number
    of workers share the lanes by leases (fair shares; SIGTERM hands them over at once)."""
    store = open_existing(database)
    try:
        shop = Shop(store)
        try:
            runtime = shop.runtime(run=run)
        except TillflowError as error:
            raise fail(str(error), 2) from None
        runtime.stall_after = stall_after
        tune_collector(gc_threshold)
        _log_outages()
        code = asyncio.run(_work(runtime, lease_keeper(store, runtime, lease_ttl)))
    finally:
        store.close()
    raise typer.Exit(code)


def _log_outages() -> None:
    """A worker's log: tillflow's warnings (one line when the database goes away, one when
    it is back), stamped; not the driver pool's every failed reconnection."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    tillflow = logging.getLogger("tillflow")
    tillflow.addHandler(handler)
    tillflow.setLevel(logging.WARNING)
    tillflow.propagate = False
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


async def _work(runtime: Runtime, keeper: LeaseKeeper | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    names = ", ".join(sorted(runtime.running))
    console.print(
        f"[bold]tillflow worker[/]: running {names} · collector threshold "
        f"{gc.get_threshold()[0]:,}",
        highlight=False,
        soft_wrap=True,  # one line, however many processors: logs and scripts read it whole
    )
    async with runtime:
        code = await _until_stopped(runtime, stop, keeper)
        if code == 0:  # the leases were resigned first: others have the lanes already
            console.print(statistics_table(runtime.statistics(), "processors at stop"))
    return code


async def _until_stopped(runtime: Runtime, stop: asyncio.Event, keeper: LeaseKeeper | None) -> int:
    """Keep the leases until ``stop`` (SIGTERM, SIGINT): 0; 1 once a processor failed.
    Says when a lane it runs stalls, and when it moves again."""
    notices = StallNotices()
    async with keeping(keeper):
        while not stop.is_set():
            rows = runtime.statistics()
            for line in notices.lines(rows, runtime.running):
                errors.print(line, highlight=False)
            failed = [
                row
                for row in rows
                if row.state == State.FAILED.value and row.processor in runtime.running
            ]
            if failed:
                for row in failed:
                    errors.print(
                        f"[bold red]error:[/] processor {row.processor} failed: {row.error}",
                        highlight=False,
                    )
                return 1
            try:
                async with asyncio.timeout(1.0):
                    await stop.wait()
            except TimeoutError:
                continue
    return 0
