"""`tillflow worker` processes of a fault run: started from the fork server, signalled,
watched (one that ends by itself fails the run with the end of its log)."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

import psycopg

from tests.faults.fence_audit import application_name
from tests.faults.forking import FORK_SERVER
from tests.faults.retry import retrying
from tests.faults.worker_process import run_worker

EXIT: Final = 300.0
"""Seconds a SIGTERMed worker may take to exit: it resigns its leases at once, then waits
for the batches it has in hand (fenced out by then), which a loaded machine makes slow."""
STARTUP: Final = 120.0
"""Seconds a worker may take to start (a loaded machine takes many)."""


class Workers:
    """`tillflow worker` processes by number, each with its own ``application_name`` and
    log file; which ones run (paused or not) and which were ended on purpose."""

    def __init__(self, url: str, ttl: float, logs: Path, unfenced: bool) -> None:
        self.arguments = ["--database", url, "--lease-ttl", str(ttl)]
        self.url = url
        self.logs = logs
        self.unfenced = unfenced
        self.processes: dict[int, BaseProcess] = {}
        self.running: set[int] = set()
        self.paused: set[int] = set()
        self.leaving: dict[int, float] = {}
        """SIGTERMed workers not yet seen to exit, with when they were asked."""
        self.slowest_exit = 0.0
        """The longest a SIGTERMed worker took to exit (seconds; ≥ when seen)."""

    def start(self) -> int:
        number = len(self.processes)
        log = str(self.logs / f"worker-{number}.log")
        process = FORK_SERVER.Process(
            target=run_worker,
            args=(self.arguments, application_name(number), log, self.unfenced),
            daemon=True,
        )
        process.start()
        self.processes[number] = process
        self.running.add(number)
        return number

    def pid(self, number: int) -> int:
        pid = self.processes[number].pid
        assert pid is not None
        return pid

    def pids(self) -> dict[int, int]:
        return {number: self.pid(number) for number in self.processes}

    def signal(self, number: int, signum: signal.Signals) -> None:
        os.kill(self.pid(number), signum)

    def up(self) -> list[int]:
        """The running workers that are up (their heartbeat is live), not paused."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT worker FROM workers WHERE expires_at > clock_timestamp()"
            ).fetchall()
        beating = {int(worker.split(":")[1]) for (worker,) in rows}
        return [n for n in sorted(self.running - self.paused) if self.pid(n) in beating]

    def wait_up(self, least: int) -> list[int]:
        """The workers up, once at least ``least`` are (they take a moment to start)."""
        deadline = time.monotonic() + STARTUP
        while len(up := retrying(self.up)) < least:
            self.check_alive()
            assert time.monotonic() < deadline, f"fewer than {least} workers up in time"
            time.sleep(0.05)
        return up

    def kill(self, number: int) -> None:
        self.running.discard(number)
        self.signal(number, signal.SIGKILL)
        self._ended(number)

    def remove(self, number: int) -> None:
        """SIGTERM: it resigns its leases at once, and must exit 0 within ``EXIT`` seconds
        (checked by :meth:`check_alive` meanwhile, waited for by :meth:`stop_all`)."""
        self.running.discard(number)
        self.signal(number, signal.SIGTERM)
        self.leaving[number] = time.monotonic()

    def _left(self, number: int, timeout: float) -> bool:
        """Whether the SIGTERMed worker has exited (0, else the run fails), within
        ``timeout`` seconds."""
        process = self.processes[number]
        process.join(timeout)
        if process.exitcode is None:
            if time.monotonic() - self.leaving[number] < EXIT:
                return False
            self._ended(number)  # fails, with its stacks
        asked = self.leaving.pop(number)
        self.slowest_exit = max(self.slowest_exit, time.monotonic() - asked)
        if process.exitcode != 0:
            raise AssertionError(
                f"worker {number} exited {process.exitcode} on SIGTERM{self.tail(number)}"
            )
        return True

    def _ended(self, number: int) -> int:
        process = self.processes[number]
        process.join(EXIT)
        if process.exitcode is None:
            self.signal(number, signal.SIGUSR1)  # its threads' stacks, into its log
            process.join(1)
            raise AssertionError(f"worker {number} did not end{self.tail(number)}")
        return process.exitcode

    def check_alive(self) -> None:
        """Fail if a running worker has ended, or a leaving one ended badly or too late."""
        for number in sorted(self.leaving):
            self._left(number, 0)
        for number in sorted(self.running):
            code = self.processes[number].exitcode
            if code is not None:
                raise AssertionError(f"worker {number} ended by itself ({code}){self.tail(number)}")

    def tail(self, number: int) -> str:
        log = self.logs / f"worker-{number}.log"
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        return f"; its log ends:\n{text[-20000:]}"

    def fenced_out(self) -> int:
        """Batches refused for a lost lease, as the workers logged them."""
        return sum(
            path.read_text(errors="replace").count("no longer holds the lease")
            for path in self.logs.glob("worker-*.log")
        )

    def stop_all(self) -> None:
        """SIGTERM those up (each must exit 0); kill those still starting."""
        up = set(retrying(self.up))
        for number in sorted(self.running):
            if number in up:
                self.remove(number)
            else:
                self.kill(number)
        for number in sorted(self.leaving):
            while not self._left(number, 1.0):
                pass

    def close(self) -> None:
        for number, process in self.processes.items():
            if process.exitcode is None:
                self.signal(number, signal.SIGCONT)
                process.kill()
                process.join(10)
