"""The shop on one SQLite file, SIGKILLed over and over: a shop process
(:mod:`tests.faults.sqlite_child`) rings up checkouts while its processors run, and is
killed at a seeded random moment (opening the file, ringing up, between a commit and its
acknowledgement, mid-batch…); the next one starts where the acknowledgements say, ringing
up a few acknowledged checkouts again (each must get its first receipt back). At the end a
last one rings up the rest and drains, and the file gets the verdict of
:mod:`tests.faults.verdict`: every checkout once, the report equal to the truth.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

from tests.faults.forking import FORK_SERVER
from tests.faults.sqlite_child import run_shop
from tests.faults.verdict import Place, behind, shop_violations
from tests.faults.workload import checkout_id, stock_the_shop
from tillflow.engine import SqliteEventStore
from tillflow.shop.assembly import REGISTRY, Shop

STARTUP: Final = 60.0
"""Seconds a shop process may take to say it is opening the file."""
FINISH: Final = 600.0
"""Seconds the last process may take to ring up the rest and drain."""

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SqlitePlan:
    """``kills`` SIGKILLs, each after up to ``most_delay`` seconds, of a process ringing up
    at most ``chunk`` more checkouts, ``checkouts`` at most in all (default: 200 per kill).
    The last process rings up every checkout a killed one was given and not acknowledged."""

    kills: int
    seed: int
    chunk: int = 600
    most_delay: float = 0.5
    checkouts: int = 0
    budget: float = 0.0
    """Seconds of kills at most (0: no limit); the run then finishes and checks."""

    @property
    def target(self) -> int:
        return self.checkouts or 200 * self.kills


@dataclass
class SqliteOutcome:
    plan: SqlitePlan
    kills: Counter[str] = field(default_factory=Counter)
    """By when they struck: opening the file, ringing up, after."""
    behind: int = 0
    """Kills that left the processors behind the log (killed mid-processing)."""
    checkouts: int = 0
    acknowledged: int = 0
    rung_again: int = 0
    violations: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> str:
        when = ", ".join(f"{count} {moment}" for moment, count in sorted(self.kills.items()))
        verdict = "nothing lost" if not self.violations else "WRONG"
        return (
            f"SQLite, seed {self.plan.seed}: survived {self.kills.total()} SIGKILLs ({when}; "
            f"{self.behind} with processors behind) in {self.elapsed:.0f} s; "
            f"{self.checkouts} checkouts, {self.acknowledged} acknowledged "
            f"({self.rung_again} rung up again); {len(self.violations)} violations: {verdict}"
        )


class ShopProcess:
    """One shop process and the lines it wrote."""

    def __init__(self, db: Path, start: int, stop: int, finish: bool) -> None:
        reader, writer = FORK_SERVER.Pipe(duplex=False)
        self.process: BaseProcess = FORK_SERVER.Process(
            target=run_shop, args=(str(db), start, stop, finish, writer), daemon=True
        )
        self.process.start()
        writer.close()
        self._reader = reader
        self._buffer = b""
        self.lines: list[str] = []
        self.ended = False

    def wait_for(self, line: str, timeout: float) -> bool:
        """Read until ``line`` (``True``), the end of the pipe or ``timeout`` (``False``)."""
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            left = deadline - time.monotonic()
            if self.ended or left <= 0:
                return False
            self._read(left)
        return True

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._reader.fileno()], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self._reader.fileno(), 65536)
        if not chunk:
            self.ended = True
            return
        *whole, self._buffer = (self._buffer + chunk).split(b"\n")
        self.lines += [line.decode() for line in whole]

    def kill(self) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.finish(10)

    def finish(self, timeout: float) -> None:
        """Wait for it to end and read what is left."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            raise AssertionError(f"the shop process did not end in {timeout:.0f} s")
        while not self.ended:
            self._read(1.0)
        self._reader.close()

    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith("error ")]


class SqliteKillRun:
    def __init__(self, plan: SqlitePlan, workdir: Path, say: Say = print) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.db = workdir / "shop.db"
        self.say = say
        self.acks: dict[int, set[Place]] = {}
        self.ack_lines = 0
        self.given = 0
        """Checkouts ``0 <= seq < given`` were given to a shop process to ring up."""
        self.outcome = SqliteOutcome(plan)

    def run(self) -> SqliteOutcome:
        started = time.monotonic()
        with SqliteEventStore(self.db, durability="full", registry=REGISTRY) as store:
            received = stock_the_shop(Shop(store))
        until = time.monotonic() + (self.plan.budget or float("inf"))
        while self.outcome.kills.total() < self.plan.kills:
            if time.monotonic() > until:
                self.say(f"the budget of {self.plan.budget:.0f} s ran out")
                break
            self._kill_one()
            if self.outcome.kills.total() % 100 == 0:
                self.say(f"{self.outcome.kills.total()} kills: {dict(self.outcome.kills)}")
        last = ShopProcess(self.db, self._restart_point(), self.given, finish=True)
        last.finish(FINISH)
        self._keep(last)
        assert last.process.exitcode == 0 and "drained" in last.lines, last.lines[-5:]
        self.outcome.violations += [
            f"checkout {seq} acknowledged at {sorted(places)}"
            for seq, places in self.acks.items()
            if len(places) != 1
        ]
        with SqliteEventStore(self.db, durability="full", registry=REGISTRY) as store:
            self.outcome.violations += shop_violations(
                store,
                {checkout_id(seq): min(places) for seq, places in self.acks.items()},
                {checkout_id(seq) for seq in range(self.given)},
                received,
            )
        self.outcome.acknowledged = len(self.acks)
        self.outcome.checkouts = self.given
        self.outcome.elapsed = time.monotonic() - started
        return self.outcome

    def _restart_point(self) -> int:
        """The first checkout not acknowledged yet, minus a few that were (rung up again)."""
        first = 0
        while first in self.acks:
            first += 1
        return max(0, first - self.rng.randint(0, 4))

    def _kill_one(self) -> None:
        start = self._restart_point()
        stop = min(self.plan.target, start + self.rng.randint(1, self.plan.chunk))
        self.given = max(self.given, stop)
        shop = ShopProcess(self.db, start, stop, finish=False)
        early = self.rng.random() < 0.15  # while it opens the file and starts
        opened = shop.wait_for("opening" if early else "ready", STARTUP)
        assert opened or shop.ended, "the shop process never got going"
        shop.wait_for("never said", self.rng.uniform(0, 0.02 if early else self.plan.most_delay))
        alive = shop.process.exitcode is None
        shop.kill()
        self._keep(shop)
        assert alive and shop.process.exitcode == -signal.SIGKILL, shop.lines[-5:]
        with SqliteEventStore(self.db, durability="full", registry=REGISTRY) as store:
            processing = any(behind(store).values())
        self.outcome.behind += processing
        if "ready" not in shop.lines:
            self.outcome.kills["opening"] += 1
        elif "rung up" not in shop.lines:
            self.outcome.kills["ringing up"] += 1
        else:
            self.outcome.kills["after ringing up"] += 1

    def _keep(self, shop: ShopProcess) -> None:
        assert not shop.errors(), shop.errors()
        for line in shop.lines:
            if line.startswith("ack "):
                _, seq, lane, position = line.split()
                self.acks.setdefault(int(seq), set()).add((int(lane), int(position)))
                self.ack_lines += 1
        self.outcome.rung_again = self.ack_lines - len(self.acks)
