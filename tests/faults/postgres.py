"""The shop on PostgreSQL under faults: ≥ 3 `tillflow worker` processes share the lanes
while tills ring up checkouts, and a seeded schedule, one fault at a time, SIGKILLs a
worker, SIGSTOPs one until its leases have expired and SIGCONTs it, adds workers, removes
them (SIGTERM) and restarts the database server. Then the report must equal the truth of
the sale log (:mod:`tests.faults.verdict`) and no commit may have landed from a worker
without the lease (:mod:`tests.faults.fence_audit`).

Kept between ``least_workers`` and ``most_workers`` running (a paused one counts); every
row is audited as a consistent cut every ``audit_every`` faults. A worker that ends by
itself (not killed, not asked to stop) fails the run with the end of its log.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.faults.fence_audit import audit, install
from tests.faults.retry import UNAVAILABLE_FOR, retrying
from tests.faults.tills import Tills
from tests.faults.verdict import Place, behind, shop_violations
from tests.faults.workers import Workers
from tests.faults.workload import stock_the_shop
from tests.postgres_cluster import TEST_SETTINGS, PostgresCluster, running_cluster
from tillflow.engine.postgres import PostgresEventStore
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.reporting.audit import ConsistentCutAudit
from tillflow.shop.reporting.projection import REPORT_VIEWS

KINDS: Final = ("kill", "pause", "add", "remove")
"""The faults, dealt at random from rounds of one each (database restarts come on top,
spread evenly)."""
STALL: Final = 120.0
"""Seconds the workers may go without catching up any further at the end (a long run's
backlog takes minutes: the report's batches are fenced out whenever a lane moves)."""

SERVER_SETTINGS: Final = {**TEST_SETTINGS, "max_connections": "400"}
"""Room for workers still exiting beside the running ones (a pool of up to 24 each)."""
LEAVING: Final = 3
"""SIGTERMed workers still exiting at most, before another worker is started."""

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PostgresPlan:
    """What to run. ``restarts``: database restarts, spread over the run (0: none);
    ``unfenced``: workers whose batches ignore their fence (the negative control), and
    the run stops at the first commit the fence audit catches."""

    faults: int
    seed: int
    restarts: int = 1
    ttl: float = 1.0
    lanes: int = 6
    least_workers: int = 3
    most_workers: int = 5
    rate: float = 150.0
    """Checkouts per second the tills aim at."""
    kinds: tuple[str, ...] = KINDS
    unfenced: bool = False
    budget: float = 0.0
    """Seconds of faults at most (0: no limit); the run then checks what it has done."""
    audit_every: int = 1
    """Faults between two consistent-cut audits of every row (each reads every product's
    stream so far: a long soak audits less often)."""


@dataclass
class PostgresOutcome:
    plan: PostgresPlan
    survived: Counter[str] = field(default_factory=Counter)
    checkouts: int = 0
    commits: int = 0
    slowest_exit: float = 0.0
    """The longest a worker took to exit after SIGTERM (seconds, as often as looked at)."""
    fenced_out: int = 0
    """Batches the store refused because their worker had lost the lease (worker logs)."""
    violations: list[str] = field(default_factory=list)
    unfenced: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{count} {kind}" for kind, count in sorted(self.survived.items()))
        verdict = "nothing lost" if not (self.violations or self.unfenced) else "WRONG"
        return (
            f"PostgreSQL, seed {self.plan.seed}: survived {self.survived.total()} faults "
            f"({faults}) in {self.elapsed:.0f} s; {self.checkouts} checkouts, "
            f"{self.commits} checkpoint commits audited, {self.fenced_out} stale batches "
            f"fenced out, slowest SIGTERM exit {self.slowest_exit:.1f} s; {len(self.violations)} "
            f"shop violations, {len(self.unfenced)} unfenced commits: {verdict}"
        )


class PostgresFaultRun:
    """One run of a plan on its own cluster (so that it can restart the server)."""

    def __init__(
        self, plan: PostgresPlan, workdir: Path, say: Say = print, trace: bool = False
    ) -> None:
        self.plan = plan
        self.trace = trace
        self.acknowledged: dict[str, Place] = {}
        self.rng = random.Random(plan.seed)
        self.workdir = workdir
        self.say = say
        self.outcome = PostgresOutcome(plan)
        self.cut = ConsistentCutAudit(REPORT_VIEWS)

    def run(self, url: str | None = None) -> PostgresOutcome:
        """Run on a database of a cluster of its own, or on ``url`` (no restarts then)."""
        started = time.monotonic()
        if url is None:
            with running_cluster(SERVER_SETTINGS) as cluster:
                self._run(cluster, cluster.create_database())
        else:
            assert self.plan.restarts == 0, "restarting the server needs a cluster of its own"
            self._run(None, url)
        self.outcome.elapsed = time.monotonic() - started
        return self.outcome

    def _run(self, cluster: PostgresCluster | None, url: str) -> None:
        store = PostgresEventStore(
            url, lanes=self.plan.lanes, registry=REGISTRY, connect_timeout=2, pool_timeout=5
        )
        workers = Workers(url, self.plan.ttl, self.workdir, self.plan.unfenced)
        try:
            install(url)
            shop = Shop(store)
            received = stock_the_shop(shop)
            for _ in range(self.plan.least_workers):
                workers.start()
            workers.wait_up(self.plan.least_workers)
            tills = Tills(shop, self.plan.rate)
            self.acknowledged = tills.acknowledged
            tills.start()
            try:
                self._faults(cluster, store, workers, url)
            finally:
                tills.stop()
            self._phase("tills stopped")
            self._catch_up(store, workers)
            self._phase("caught up")
            workers.stop_all()
            self._phase("workers stopped")
            self.outcome.checkouts = len(tills.acknowledged)
            self.outcome.fenced_out = workers.fenced_out()
            self.outcome.slowest_exit = workers.slowest_exit
            self.outcome.violations += shop_violations(
                store, tills.acknowledged, tills.acknowledged.keys(), received
            )
            self._phase("shop checked")
            commits = audit(url, workers.pids())
            self.outcome.commits = commits.commits
            self.outcome.unfenced = commits.unfenced
        finally:
            workers.close()
            store.close()

    def _faults(
        self, cluster: PostgresCluster | None, store: PostgresEventStore, workers: Workers, url: str
    ) -> None:
        plan = self.plan
        restarts = {(n + 1) * plan.faults // (plan.restarts + 1) for n in range(plan.restarts)}
        deck: list[str] = []
        until = time.monotonic() + (plan.budget or float("inf"))
        for index in range(plan.faults):
            if time.monotonic() > until:
                self.say(f"the budget of {plan.budget:.0f} s ran out after {index} faults")
                break
            time.sleep(self.rng.uniform(0.1, 0.5))  # load between faults
            if index in restarts:
                workers.wait_up(len(workers.running))  # not one still opening the store
                self._restart(cluster)
            if not deck:  # every kind once in each round, in a random order
                deck = self.rng.sample(plan.kinds, len(plan.kinds))
            kind = deck.pop()
            getattr(self, f"_{kind}")(store, workers)
            self.outcome.survived[kind] += 1
            workers.check_alive()
            if index % plan.audit_every == 0:
                self.outcome.violations += retrying(lambda: self.cut(store))
            if plan.unfenced and audit(url, workers.pids()).unfenced:
                return
            self._phase(f"fault {index}: {kind}, {len(self.acknowledged)} checkouts so far")
            if (index + 1) % 50 == 0:
                self.say(
                    f"{index + 1} faults: {dict(self.outcome.survived)}, behind {behind(store)}"
                )

    def _phase(self, what: str) -> None:
        if self.trace:
            self.say(what)

    def _restart(self, cluster: PostgresCluster | None) -> None:
        assert cluster is not None
        cluster.stop("immediate")  # a crash: recovery on start
        time.sleep(self.rng.uniform(0.5, 2.0) * self.plan.ttl)  # the leases run out meanwhile
        cluster.start()
        self.outcome.survived["database restart"] += 1

    def _kill(self, store: PostgresEventStore, workers: Workers) -> None:
        workers.kill(self.rng.choice(workers.wait_up(1)))
        self._keep_enough(workers)

    def _remove(self, store: PostgresEventStore, workers: Workers) -> None:
        workers.remove(self.rng.choice(workers.wait_up(1)))
        self._keep_enough(workers)

    def _add(self, store: PostgresEventStore, workers: Workers) -> None:
        if len(workers.running) >= self.plan.most_workers:
            workers.remove(self.rng.choice(workers.wait_up(1)))
        self._start(workers)

    def _keep_enough(self, workers: Workers) -> None:
        while len(workers.running) < self.plan.least_workers:
            self._start(workers)

    def _start(self, workers: Workers) -> None:
        while len(workers.leaving) >= LEAVING:
            workers.check_alive()
            time.sleep(0.1)
        workers.start()

    def _pause(self, store: PostgresEventStore, workers: Workers) -> None:
        """SIGSTOP a worker until every lease it held has expired, then a little more."""
        number = self.rng.choice(workers.wait_up(1))
        pid = workers.pid(number)
        workers.signal(number, signal.SIGSTOP)
        workers.paused.add(number)
        try:
            deadline = time.monotonic() + UNAVAILABLE_FOR
            while any(
                row.held and row.owner is not None and int(row.owner.split(":")[1]) == pid
                for row in retrying(store.leases.rows)
            ):
                assert time.monotonic() < deadline, f"worker {number}'s leases never expired"
                time.sleep(0.05)
            time.sleep(self.rng.uniform(0.0, 0.5) * self.plan.ttl)
        finally:
            workers.signal(number, signal.SIGCONT)
            workers.paused.discard(number)

    def _catch_up(self, store: PostgresEventStore, workers: Workers) -> None:
        """Wait until every checkpoint is at its lane's head, as long as they move."""
        least = sum(retrying(lambda: behind(store)).values())
        moved = time.monotonic()
        while least:
            workers.check_alive()
            if time.monotonic() - moved > STALL:
                raise AssertionError(f"the workers stopped catching up: {behind(store)} behind")
            time.sleep(0.2)
            now = sum(retrying(lambda: behind(store)).values())
            if now < least:
                least, moved = now, time.monotonic()
