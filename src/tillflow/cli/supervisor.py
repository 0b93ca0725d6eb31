"""``tillflow serve --workers N`` (N ≥ 1): N HTTP processes on one listening socket, the
shop's processors in the supervising process.

::

    tillflow serve --workers 2 ─┬─ listening socket (bound here, inherited by the workers)
      (this process: Runtime,   ├─► worker 1: tillflow serve --no-processors --socket-fd FD
       inventory → reporting)   └─► worker 2: tillflow serve --no-processors --socket-fd FD
                                         all on one SQLite file

Each HTTP worker is an ordinary ``tillflow serve --no-processors`` process (its own event
loop, GIL and writer thread) serving the socket this process bound, so the kernel hands
each new connection to one of them. Their appends and the processors' batches meet in
the SQLite file, whose write lock serialises them. Read-your-writes and the live stream
work from any worker: waits and the report watch read the processors' durable
checkpoints from the file. ``/metrics`` and ``/processors`` answer from the worker that
took the connection (processors show as ``elsewhere`` there); a processor failure is
said here, on this process's output.

SIGTERM or SIGINT stops the workers (each finishes its open requests) and then the
processors; exit 0. A worker that exits on its own stops the rest; exit 1.

Each worker holds the read end of a pipe whose write end only this process holds: when
this process ends, however (even SIGKILL), the kernel closes it and every worker reads
end-of-file at once (:func:`when_orphaned`). An orphaned worker stops listening and is
gone within :data:`ORPHAN_GRACE` seconds, so no write is accepted a second after its
supervisor died.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from tillflow.cli.common import errors
from tillflow.cli.stalls import StallNotices
from tillflow.engine import Runtime, State
from tillflow.service.settings import Settings

STOP_DEADLINE: Final = 15.0
"""Seconds the workers get to stop after SIGTERM (their graceful shutdown is shorter)."""
LOOK_EVERY: Final = 0.2
ORPHAN_GRACE: Final = 0.3
"""Seconds an HTTP worker whose supervisor died gives the requests it has open before it
exits regardless (their connections close unanswered): well inside the one second after
which it promises to accept no write."""
ORPHANED_EXIT: Final = 1


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, inheritable by child processes.
    Raises ``OSError`` (e.g. the address is in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def worker_command(settings: Settings, fd: int, lifeline: int) -> list[str]:
    """The command line of one HTTP worker serving the socket ``fd``, watching the pipe
    ``lifeline`` for its supervisor's end. The database is not on it (a PostgreSQL URL may
    hold a password, and command lines are public): see :func:`worker_environment`."""
    return [
        sys.executable,
        "-m",
        "tillflow",
        "serve",
        "--no-processors",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--log-level",
        settings.log_level,
        "--gc-threshold",
        str(settings.gc_threshold),
        "--stall-after",
        str(settings.stall_after),
        "--socket-fd",
        str(fd),
        "--lifeline-fd",
        str(lifeline),
    ]


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment of an HTTP worker: this one's, with the database the supervisor
    serves."""
    return {**os.environ, "TILLFLOW_DATABASE": settings.database}


class Supervisor:
    """Starts ``count`` HTTP workers on ``listener`` and runs ``runtime`` (the processors,
    or ``None``) until asked to stop or until a worker exits; ``beside``, if given, is
    entered once the runtime runs (the lease keeper)."""

    def __init__(
        self,
        settings: Settings,
        listener: socket.socket,
        count: int,
        runtime: Runtime | None,
        beside: contextlib.AbstractAsyncContextManager[object] | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.count = count
        self.runtime = runtime
        self.beside = beside
        self.workers: list[subprocess.Popen[bytes]] = []
        self._lifeline: int | None = None
        self.stalls = StallNotices()
        """The pipe's write end: held, never written, closed by the kernel at our end."""

    def start(self) -> None:
        """Start the workers; this process keeps no copy of the socket afterwards, and the
        only copy of the lifeline's write end (not inheritable: no worker gets it). A
        SIGTERM or SIGINT meanwhile is held until every worker started is in
        :attr:`workers` (so that stopping them misses none), then raises ``SystemExit(0)``."""
        fd = self.listener.fileno()
        lifeline, self._lifeline = os.pipe()
        with _signals_held() as held:
            try:
                for _ in range(self.count):
                    self.workers.append(
                        subprocess.Popen(
                            worker_command(self.settings, fd, lifeline),
                            env=worker_environment(self.settings),
                            pass_fds=(fd, lifeline),
                        )
                    )
            finally:
                self.listener.close()
                os.close(lifeline)
        if held:
            raise SystemExit(0)

    def close(self) -> None:
        """Let go of the lifeline (call once the workers are stopped). Idempotent."""
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    async def run(self) -> int:
        """Supervise until SIGTERM / SIGINT (0) or a worker's own exit (1); the workers are
        stopped first, then the processors."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.runtime is not None:
                    await stack.enter_async_context(self.runtime)
                if self.beside is not None:
                    await stack.enter_async_context(self.beside)
                code = await self._watch(stop)
                codes = await asyncio.to_thread(stop_all, self.workers)
        finally:
            stop_all(self.workers)  # already stopped, unless something above raised
        if code == 0 and any(codes):
            errors.print(
                f"[bold red]error:[/] HTTP workers stopped with exit codes {codes}",
                highlight=False,
            )
            return 1
        return code

    async def _watch(self, stop: asyncio.Event) -> int:
        said: set[str] = set()
        while not stop.is_set():
            for number, worker in enumerate(self.workers, start=1):
                code = worker.poll()
                if code is not None:
                    errors.print(
                        f"[bold red]error:[/] HTTP worker {number} (pid {worker.pid}) exited "
                        f"with code {code}; stopping the others",
                        highlight=False,
                    )
                    return 1
            self._say_failures(said)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOOK_EVERY):
                    await stop.wait()
        return 0

    def _say_failures(self, said: set[str]) -> None:
        """Print each failed processor once (the HTTP workers show processors as
        ``elsewhere``: this output is where a failure is said), and each lane that stalls
        or moves again."""
        if self.runtime is None:
            return
        rows = self.runtime.statistics()
        for line in self.stalls.lines(rows, self.runtime.running):
            errors.print(line, highlight=False)
        for row in rows:
            if row.state == State.FAILED.value and row.processor not in said:
                said.add(row.processor)
                errors.print(
                    f"[bold red]error:[/] processor {row.processor} failed: {row.error}",
                    highlight=False,
                )


def when_orphaned(lifeline: int, stop: Callable[[], None], stopped: threading.Event) -> None:
    """In an HTTP worker: once the pipe ``lifeline`` reads end-of-file (the supervisor has
    ended), call ``stop`` (a graceful shutdown) and, unless ``stopped`` is set within
    :data:`ORPHAN_GRACE` seconds, end the process there and then (exit code
    :data:`ORPHANED_EXIT`). Watches from a daemon thread; returns at once."""

    def watch() -> None:
        with contextlib.suppress(OSError):  # a broken pipe says the same as end-of-file
            while os.read(lifeline, 1):
                pass  # nothing is ever written; only the end counts
        stop()
        errors.print(
            "[bold red]error:[/] the supervising process is gone; this HTTP worker stops",
            highlight=False,
        )
        if not stopped.wait(ORPHAN_GRACE):
            sys.stderr.flush()
            os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="tillflow:lifeline", daemon=True).start()


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """A block in which SIGTERM and SIGINT are only noted, in the list it yields: a
    signal that raised in the middle of ``Popen`` would lose the process it had started."""
    held: list[int] = []
    stopping = (signal.SIGTERM, signal.SIGINT)
    before = {
        signum: signal.signal(signum, lambda signum, _: held.append(signum)) for signum in stopping
    }
    try:
        yield held
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def stop_all(workers: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM every running worker, wait up to :data:`STOP_DEADLINE` seconds in all, kill
    what is left; their exit codes. A worker ended by that SIGTERM itself (it was still
    starting, before it handles the signal: no request taken yet) stopped as asked: 0."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    codes = []
    for worker in workers:
        try:
            code = worker.wait(max(0.0, deadline - time.monotonic()))
            codes.append(0 if code == -signal.SIGTERM else code)
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes
