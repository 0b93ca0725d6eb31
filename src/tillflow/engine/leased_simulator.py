"""The simulator with several workers sharing the lanes by leases: each worker has its own
lane processors (fresh handlers) and :class:`LeaseKeeper` over the one memory store, and a
:class:`MemoryLeases` table on the simulated clock. Workers tick, step the lanes they
believe they hold, are paused inside a batch while the clock runs past their leases and
another worker takes the lanes over, wake and commit that batch, join, leave and die.

::

    Random(seed) ─► Command · Elapse · Join · Tick(w) · StepOn(w, p, lane) · Pause(w, p, lane)
                    · Wake(w) · Leave(w) · Kill(w)
                          │ keepers lease through a LeaseAudit (its own model of tenures);
                          │ every batch commits under its worker's fence (MemoryLeases)
                          ▼
    after every action: the scenario's checks, and the lease audit — no lease granted or
    renewed while another's ran, no batch landed outside the tenure its fence was granted
    in, and no holder of a running lease found its checkpoint moved by someone else

The drain wakes every paused worker, lets the leases of the dead expire and ticks and steps
the live workers until a whole round is quiet.
"""

from __future__ import annotations

import bisect
import dataclasses

from tillflow.engine.errors import CheckpointConflict, LeaseLost, UnknownProcessor
from tillflow.engine.graph import validate_graph
from tillflow.engine.lane_processor import CommitBatch, LaneProcessor
from tillflow.engine.lease_audit import LeaseAudit
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.memory_leases import MemoryLeases
from tillflow.engine.parked_step import ParkedStep
from tillflow.engine.processor import Processor
from tillflow.engine.simulator import Action, Command, Scenario, Simulator, Violation
from tillflow.engine.store import BatchEffects, EventRegistry
from tillflow.engine.types import Receipt
from tillflow.engine.worker_actions import (
    Elapse,
    Join,
    Kill,
    Leasing,
    Leave,
    Pause,
    StepOn,
    Tick,
    Wake,
    WorkerAction,
)


class SimulatedClock:
    """Seconds since the run began; moved only by :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)


class SimulatedWorker:
    """One worker process: a lane processor per (processor, lane), a lease keeper, whether
    it is paused, and the step stopped inside its commit while it is."""

    def __init__(
        self, name: str, lanes: dict[str, list[LaneProcessor]], keeper: LeaseKeeper
    ) -> None:
        self.name = name
        self.lanes = lanes
        self.names = list(lanes)
        """The processors it runs, upstream first."""
        self.keeper = keeper
        self.paused = False
        self.next_tick = 0.0
        """When its keeper's timer ticks next (while it runs)."""
        self.parked: ParkedStep | None = None
        """The step stopped inside its commit (set while it is started, too)."""
        self.batch = ""
        """The batch the parked step is committing, for the trace."""


class LeasedSimulator(Simulator):
    """One run with leased workers; see the module docstring. Not reusable."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        lane_count: int | None,
        leasing: Leasing,
        stuck_after: int,
        registry: EventRegistry | None,
    ) -> None:
        super().__init__(scenario, seed, lane_count, leasing.weights, stuck_after, registry)
        self.leasing = leasing
        self.clock = SimulatedClock()
        self.leases = MemoryLeases(self.clock)
        self.audit = LeaseAudit(self.leases, self.clock)
        self.workers: dict[str, SimulatedWorker] = {}
        self.joined = 0

    # -- choosing ---------------------------------------------------------------------------

    def choose(self) -> Action:
        rng = self.rng
        kind = self.kinds[bisect.bisect(self.cumulative, rng.random() * self.total)]
        everyone = sorted(self.workers)
        paused = [name for name in everyone if self.workers[name].paused]
        running = [name for name in everyone if not self.workers[name].paused]
        if kind == "command":
            return Command()
        if kind == "elapse":
            return Elapse(round(rng.uniform(0.1, self.leasing.ttl), 1))
        if not everyone or (kind == "join" and len(everyone) < self.leasing.most_workers):
            return Join()
        if kind == "kill":
            return Kill(rng.choice(everyone))
        if paused and kind == "wake":
            return Wake(rng.choice(paused), rng.random() < 0.5)
        if not running:
            return Command()
        holding = [name for name in running if self.workers[name].keeper.held]
        if kind in ("step", "pause") and holding:
            worker = rng.choice(holding)
            lane = rng.choice(sorted(self.workers[worker].keeper.held))
            name = rng.choice(self.workers[worker].names)
            return StepOn(worker, name, lane) if kind == "step" else Pause(worker, name, lane)
        worker = rng.choice(running)
        return Leave(worker) if kind == "leave" else Tick(worker)

    # -- performing -------------------------------------------------------------------------

    def perform(self, action: Action) -> str:
        if isinstance(action, Command):
            return self.command()
        if isinstance(action, Elapse):
            return self.elapse(action.seconds)
        if isinstance(action, Join):
            return self.join()
        if not isinstance(action, Tick | StepOn | Pause | Wake | Leave | Kill):
            raise ValueError(f"{action}: not an action of leased workers")
        worker = self.workers.get(action.worker)
        if worker is None:
            return f"{action.worker} is not running"
        if isinstance(action, Kill):
            return self.kill(worker)
        if isinstance(action, Wake):
            return self.wake(worker, action.tick_first)
        if worker.paused:
            return f"{worker.name} is paused"
        if isinstance(action, Tick):
            return self.tick(worker)
        if isinstance(action, Leave):
            return self.leave(worker)
        lane_processor = self.worker_lane(worker, action.processor, action.lane)
        if isinstance(action, Pause):
            return self.pause(worker, lane_processor)
        if not lane_processor.leased:
            return f"{worker.name} does not hold lane {action.lane}"
        return self.attempt(lane_processor)[0]

    def elapse(self, seconds: float) -> str:
        """The clock moves on; on the way every running worker's keeper ticks whenever its
        timer is due (every ``ttl / 3``, as :meth:`LeaseKeeper.keep`)."""
        before = self.clock.now
        until = round(before + seconds, 6)
        moves: list[str] = []
        while True:
            due = [w for w in self.workers.values() if not w.paused and w.next_tick <= until]
            if not due:
                break
            worker = min(due, key=lambda w: (w.next_tick, w.name))
            self.clock.now = max(self.clock.now, worker.next_tick)
            text = self.tick(worker)
            if "took" in text or "let go" in text:
                moves.append(f"{worker.name} at {self.clock.now:g} s {text}")
        self.clock.now = until
        lost: dict[str, set[int]] = {}
        for (_, lane), tenure in self.audit.tenures.items():
            if tenure.owner and before < tenure.expires <= until:
                lost.setdefault(tenure.owner, set()).add(lane)
        expired = [f"{owner}'s lease on {sorted(lanes)} expired" for owner, lanes in lost.items()]
        return "; ".join([f"clock at {until:g} s", *sorted(expired), *moves])

    def join(self) -> str:
        self.joined += 1
        name = f"w{self.joined}"
        declared = self.scenario.processors(self.store)
        # every processor's lanes split among workers, as if spread: the harder case (run
        # whole, a processor's lanes are split only while a group changes hands)
        by_name = {item.name: dataclasses.replace(item, spread=True) for item in declared}
        if sorted(by_name) != sorted(self.names):
            raise ValueError(f"{name}: the scenario declared {sorted(by_name)}, not {self.names}")
        runs = self.leasing.runs
        chosen = runs[(self.joined - 1) % len(runs)] if runs else self.names
        lanes = {
            processor: [
                LaneProcessor(self.store, by_name[processor], lane, scheduled=True)
                for lane in range(self.lane_count)
            ]
            for processor in self.names
            if processor in chosen
        }
        worker = SimulatedWorker(name, lanes, self.keeper(name, lanes))
        worker.next_tick = self.clock.now
        self.workers[name] = worker
        return f"{name} joined"

    def keeper(self, name: str, lanes: dict[str, list[LaneProcessor]]) -> LeaseKeeper:
        def fenced(fence: Fence) -> CommitBatch:
            return lambda *batch: self.commit_under(name, fence, *batch)

        return LeaseKeeper(self.audit, name, lanes, self.leasing.ttl, fenced)

    def tick(self, worker: SimulatedWorker) -> str:
        before = dict(worker.keeper.held)
        worker.next_tick = round(self.clock.now + self.leasing.ttl / 3, 6)
        worker.keeper.tick()
        after = worker.keeper.held
        text = f"holds {sorted(after)}"
        if took := sorted(lane for lane in after if before.get(lane) != after[lane]):
            text += f", took {took}"
        if gone := sorted(set(before) - set(after)):
            text += f", let go of {gone}"
        return text

    def pause(self, worker: SimulatedWorker, lane_processor: LaneProcessor) -> str:
        worker.paused = True
        if not lane_processor.leased:
            return f"paused idle ({worker.name} does not hold lane {lane_processor.lane})"
        step = ParkedStep(
            lambda: self.attempt(lane_processor)[0],
            f"{worker.name} {lane_processor.name}@{lane_processor.lane}",
        )
        worker.parked = step
        if step.start():
            return f"paused inside the batch {worker.batch}, before its commit"
        worker.parked = None
        return f"{step.resume()}; paused after it"

    def wake(self, worker: SimulatedWorker, tick_first: bool) -> str:
        if not worker.paused:
            return f"{worker.name} is not paused"
        worker.paused = False
        worker.next_tick = self.clock.now  # its timer is long overdue
        parts = [f"tick: {self.tick(worker)}"] if tick_first else []
        step, worker.parked = worker.parked, None
        if step is not None:
            parts.append(f"the batch {worker.batch}: {step.resume()}")
        return "; ".join(parts) or "woke idle"

    def leave(self, worker: SimulatedWorker) -> str:
        held = sorted(worker.keeper.held)
        worker.keeper.resign()
        del self.workers[worker.name]
        return f"resigned lanes {held}"

    def kill(self, worker: SimulatedWorker) -> str:
        self.crashes += 1
        del self.workers[worker.name]
        text = f"killed holding {sorted(worker.keeper.held)} until they expire"
        if worker.parked is not None:
            worker.parked.abort()
            text += f"; the batch {worker.batch} died uncommitted"
        return text

    def worker_lane(self, worker: SimulatedWorker, name: str, lane: int) -> LaneProcessor:
        if name not in self.names:
            raise UnknownProcessor(name)
        lanes = worker.lanes.get(name)
        if lanes is None:
            raise ValueError(f"{worker.name} does not run {name!r}")
        if not 0 <= lane < self.lane_count:
            raise ValueError(f"lane {lane} of {name!r}: the store has {self.lane_count} lane(s)")
        return lanes[lane]

    # -- committing under a fence, audited --------------------------------------------------

    def commit_under(
        self,
        worker: str,
        fence: Fence,
        processor: str,
        lane: int,
        expected: int,
        new: int,
        effects: BatchEffects,
    ) -> Receipt:
        """A batch of ``worker`` under ``fence``; stops first if it is the step being
        paused. Then the lease audit (see the module docstring)."""
        paused = self.workers.get(worker)
        if paused is not None and paused.parked is not None:
            paused.batch = f"{processor}@{lane}:{expected + 1}..{new}"
            paused.parked.park()
        batch = f"a batch of {processor}@{lane} ({expected + 1}..{new}) by {worker}"
        commit = self.leases.fenced_commit(self.store, fence)
        try:
            receipt = commit(processor, lane, expected, new, effects)
        except LeaseLost:
            raise
        except CheckpointConflict as conflict:
            if self.audit.holds(processor, lane, fence):
                self.pending.append(
                    f"{batch} found the checkpoint at {conflict.actual}, not {expected}, under "
                    "its own running lease: someone committed on a lane they did not hold, or "
                    "the worker did not read the checkpoint afresh when it took the lane"
                )
            raise
        self.audit.landed(processor, lane, fence, batch)
        return receipt

    def check(self, action: str) -> None:
        self.pending += self.audit.take_problems()
        super().check(action)

    # -- the two phases ---------------------------------------------------------------------

    def rebuild(self) -> None:
        declared: list[Processor] = self.scenario.processors(self.store)
        self.names = validate_graph(declared, self.store.registry)
        for names in self.leasing.runs:
            for name in names:
                if name not in self.names:
                    raise UnknownProcessor(name)
        for _ in range(self.leasing.workers):
            self.join()

    def drain(self, rounds: int) -> None:
        ending: list[WorkerAction] = [
            Wake(name) for name in sorted(self.workers) if self.workers[name].paused
        ]
        ending += [Join()] * self.joins_to_run_everything()
        ending.append(Elapse(self.leasing.ttl))  # the dead's leases expire
        for action in ending:
            self.count += 1
            self.trace.append(f"{self.count:>5} drain {action}: {self.perform(action)}")
            self.check(f"drain {action}")
            if self.violations:
                return
        if not self.settle(rounds):
            return
        if unheld := self.unheld():
            live = ", ".join(f"{w.name} runs {w.names}" for w in self.workers.values())
            message = f"nobody took {unheld} once the drain was quiet ({live})"
            self.violations.append(Violation(self.count, "drain", message))
            return
        self.final_checks()

    def joins_to_run_everything(self) -> int:
        """How many workers must join (in turn) before every processor has a live one."""
        running = {name for worker in self.workers.values() for name in worker.names}
        runs = self.leasing.runs or (tuple(self.names),)
        joins = 0
        while not running >= set(self.names):
            running |= set(runs[(self.joined + joins) % len(runs)])
            joins += 1
        return joins

    def unheld(self) -> str:
        """The lanes of each processor that no live worker holds, once the drain is quiet."""
        parts = []
        for name in self.names:
            held = {
                lane
                for worker in self.workers.values()
                if name in worker.lanes
                for lane, fences in worker.keeper.held.items()
                if name in fences
            }
            if missing := sorted(set(range(self.lane_count)) - held):
                parts.append(f"{name}@{missing}")
        return ", ".join(parts)

    def drain_round(self) -> bool:
        """Every live worker ticks, then steps every (processor, lane) it holds; whether
        anything moved."""
        moved = False
        for worker in [self.workers[name] for name in sorted(self.workers)]:
            changes = worker.keeper.changes
            self.count += 1
            text = self.tick(worker)
            if worker.keeper.changes != changes:
                moved = True
                self.trace.append(f"{self.count:>5} drain {Tick(worker.name)}: {text}")
                self.check(f"drain {Tick(worker.name)}")
            for lane, fences in worker.keeper.held.items():
                for name in (name for name in worker.names if name in fences):
                    self.count += 1
                    text, changed = self.attempt(worker.lanes[name][lane])
                    if not changed:
                        continue
                    moved = True
                    action = f"drain {StepOn(worker.name, name, lane)}"
                    self.trace.append(f"{self.count:>5} {action}: {text}")
                    self.check(action)
                    if self.violations:
                        return True
        return moved

    def close(self) -> None:
        for worker in self.workers.values():
            if worker.parked is not None:
                worker.parked.abort()
                worker.parked = None
