"""The machine under :func:`~tillflow.engine.simulation.simulate`: the actions it can take,
the scenario port it drives, and :class:`Simulator`, which holds one run's state (the store,
the processors of the current "process", the trace) and performs actions one at a time.

::

    Simulator.play(n or schedule) ── choose() ─► perform(action) ─► trace line ─► check()
    Simulator.drain(rounds) ──────── attempt() every processor, round-robin, until quiet
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, TypeAlias

from tillflow.engine.errors import HandlerFailed, LeaseLost, UnknownProcessor
from tillflow.engine.faults import FaultyStore, SimulatedCommitFailure, SimulatedCrash
from tillflow.engine.graph import validate_graph
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.engine.memory import MemoryEventStore
from tillflow.engine.processor import Processor
from tillflow.engine.store import EventRegistry, EventStore
from tillflow.engine.worker_actions import WorkerAction, WorkerWeights

# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Run one ``scenario.command``."""

    def __str__(self) -> str:
        return "command"


@dataclass(frozen=True, slots=True)
class Step:
    """Exactly one :meth:`LaneProcessor.step` of ``processor`` on ``lane``."""

    processor: str
    lane: int = 0

    def __str__(self) -> str:
        return f"step {self.processor}@{self.lane}"


@dataclass(frozen=True, slots=True)
class Crash:
    """Forget every processor and handler in memory; rebuild them from the durable store."""

    def __str__(self) -> str:
        return "crash"


@dataclass(frozen=True, slots=True)
class CrashInBatch:
    """Step ``processor`` on ``lane``; the process dies after its handlers ran, before the
    commit (nothing of the batch is written), then everything is rebuilt as in :class:`Crash`."""

    processor: str
    lane: int = 0

    def __str__(self) -> str:
        return f"crash_in_batch {self.processor}@{self.lane}"


@dataclass(frozen=True, slots=True)
class FailCommit:
    """Step ``processor`` on ``lane``; the store refuses the commit (a blip) and the process
    lives on: handlers keep whatever they hold in memory, the batch is retried later."""

    processor: str
    lane: int = 0

    def __str__(self) -> str:
        return f"fail_commit {self.processor}@{self.lane}"


@dataclass(frozen=True, slots=True)
class CommandInBatch:
    """Step ``processor`` on ``lane``; a command commits after its handlers ran and before
    its commit (another writer got in between). With no batch to commit, the command runs
    after the step."""

    processor: str
    lane: int = 0

    def __str__(self) -> str:
        return f"command_in_batch {self.processor}@{self.lane}"


Action: TypeAlias = (
    Command | Step | Crash | CrashInBatch | FailCommit | CommandInBatch | WorkerAction
)
"""One thing the simulator does; a run's ``actions`` replay it as a ``schedule``. The
:data:`WorkerAction` kinds are those of a run with leased workers."""


@dataclass(frozen=True)
class Weights:
    """How often each action is chosen, relative to the others (0 never chooses it)."""

    command: float = 3.0
    step: float = 10.0
    crash: float = 0.3
    crash_in_batch: float = 0.5
    fail_commit: float = 0.3
    command_in_batch: float = 0.5

    def __post_init__(self) -> None:
        values = [getattr(self, item.name) for item in fields(self)]
        if any(value < 0 for value in values) or sum(values) <= 0:
            raise ValueError("weights must be ≥ 0 and not all 0")


_AIMED: dict[str, Callable[[str, int], Action]] = {
    "step": Step,
    "crash_in_batch": CrashInBatch,
    "fail_commit": FailCommit,
    "command_in_batch": CommandInBatch,
}


# -- the scenario port ----------------------------------------------------------------------


class Scenario(Protocol):
    """What the simulator runs. A fresh scenario object per run: it may keep the truth of the
    outside world (what commands did) in attributes, which survive simulated crashes."""

    def processors(self, store: EventStore) -> list[Processor]:
        """Fresh processor declarations; called at the start and again after every crash
        (so any in-memory state of handlers is lost, as in a real crash)."""
        ...

    def command(self, rng: random.Random, store: EventStore) -> str:
        """Perform one random command against ``store`` (appends), drawing every choice from
        ``rng``; return a one-line description for the trace."""
        ...

    def check(self, store: EventStore) -> list[str]:
        """Properties that must hold at every moment (reading committed state only); one
        message per violation, ``[]`` when all hold."""
        ...

    def check_final(self, store: EventStore) -> list[str]:
        """Properties that must hold once every processor has caught up."""
        ...


# -- violations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """A property that failed: after action number ``step`` (``action`` describes it)."""

    step: int
    action: str
    message: str

    def __str__(self) -> str:
        return f"step {self.step} ({self.action}): {self.message}"


class _ScenarioRaised(BaseException):
    """Carries an exception of ``scenario.command`` out through a processor's step (which
    would otherwise record it as the processor's failure)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Simulator:
    """One run: the store, the processors of the current "process", the trace, and the
    failures in a row per (processor, lane). Not reusable: make one per run."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        lane_count: int | None,
        weights: Weights | WorkerWeights,
        stuck_after: int,
        registry: EventRegistry | None,
    ) -> None:
        self.scenario = scenario
        self.rng = random.Random(seed)
        drawn = self.rng.randint(1, 3)  # drawn even when given, so that replays line up
        self.lane_count = drawn if lane_count is None else lane_count
        self.command_rng = random.Random(self.rng.getrandbits(64))
        self.store = MemoryEventStore(self.lane_count, registry)
        self.stuck_after = stuck_after
        self.kinds = [item.name for item in fields(weights)]
        self.cumulative: list[float] = []
        total = 0.0
        for kind in self.kinds:
            total += getattr(weights, kind)
            self.cumulative.append(total)
        self.total = total
        self.trace: list[str] = []
        self.violations: list[Violation] = []
        self.actions: list[Action] = []
        self.count = 0
        self.crashes = 0
        self.fenced = 0
        self.names: list[str] = []
        self.lanes: dict[str, list[LaneProcessor]] = {}
        self.failures: dict[tuple[str, int], tuple[int, int]] = {}
        self.pending: list[str] = []

    # -- the two phases ---------------------------------------------------------------------

    def play(self, plan: Sequence[Action] | int) -> None:
        self.rebuild()
        count = plan if isinstance(plan, int) else len(plan)
        for index in range(count):
            action = self.choose() if isinstance(plan, int) else plan[index]
            self.count += 1
            self.actions.append(action)
            text = self.perform(action)
            self.trace.append(f"{self.count:>5} {action}: {text}")
            self.check(str(action))
            if self.violations:
                return

    def drain(self, rounds: int) -> None:
        if self.settle(rounds):
            self.final_checks()

    def settle(self, rounds: int) -> bool:
        """Run :meth:`drain_round` until a round moves nothing (``True``), at most
        ``rounds`` times; ``False`` with a violation recorded otherwise."""
        for _ in range(rounds):
            moved = self.drain_round()
            if self.violations:
                return False
            if not moved:
                break
        else:
            behind = self.behind()
            self.violations.append(
                Violation(self.count, "drain", f"did not converge in {rounds} rounds: {behind}")
            )
            return False
        self.trace.append(f"{self.count:>5} drained: {self.describe_checkpoints()}")
        return True

    def drain_round(self) -> bool:
        """Attempt every processor on every lane once; whether anything moved."""
        moved = False
        for name in self.names:
            for lane_processor in self.lanes[name]:
                self.count += 1
                text, changed = self.attempt(lane_processor)
                if not changed:
                    continue
                moved = True
                action = f"drain {Step(name, lane_processor.lane)}"
                self.trace.append(f"{self.count:>5} {action}: {text}")
                self.check(action)
                if self.violations:
                    return True
        return moved

    def final_checks(self) -> None:
        """The scenario's checks once everything has drained."""
        messages = self.scenario.check(self.store) + self.scenario.check_final(self.store)
        self.violations += [Violation(self.count, "final", message) for message in messages]

    def close(self) -> None:
        """Let go of whatever the run still holds (nothing here; threads of leased runs)."""

    def check(self, action: str) -> None:
        messages = self.pending + self.scenario.check(self.store)
        self.pending = []
        self.violations += [Violation(self.count, action, message) for message in messages]

    # -- actions ----------------------------------------------------------------------------

    def choose(self) -> Action:
        kind = self.kinds[bisect.bisect(self.cumulative, self.rng.random() * self.total)]
        if kind == "crash":
            return Crash()
        if kind == "command" or not self.names:
            return Command()
        name = self.names[self.rng.randrange(len(self.names))]
        return _AIMED[kind](name, self.rng.randrange(self.lane_count))

    def perform(self, action: Action) -> str:
        if isinstance(action, Command):
            return self.command()
        if isinstance(action, Crash):
            return self.crash()
        if not isinstance(action, Step | CrashInBatch | FailCommit | CommandInBatch):
            raise ValueError(f"{action}: an action of leased workers (pass leasing=)")
        lane_processor = self.lane_processor(action.processor, action.lane)
        if isinstance(action, Step):
            return self.attempt(lane_processor)[0]
        return self.faulty_step(lane_processor, action)

    def command(self) -> str:
        return self.scenario.command(self.command_rng, self.store)

    def crash(self) -> str:
        self.crashes += 1
        self.rebuild()
        return f"processors rebuilt from the store at {self.describe_checkpoints()}"

    def faulty_step(
        self, lane_processor: LaneProcessor, action: CrashInBatch | FailCommit | CommandInBatch
    ) -> str:
        commanded: list[str] = []

        def before_commit(processor: str, lane: int, expected: int, new: int) -> None:
            if isinstance(action, CrashInBatch):
                raise SimulatedCrash
            if isinstance(action, FailCommit):
                raise SimulatedCommitFailure
            if not commanded:
                try:
                    commanded.append(self.command())
                except Exception as error:  # the scenario's own code: not the processor's
                    raise _ScenarioRaised(error) from error

        faulty = FaultyStore(self.store, before_commit)
        lane_processor.store = faulty
        try:
            text = self.attempt(lane_processor)[0]
        except SimulatedCrash:
            low, high = faulty.commits_attempted[-1]
            text = f"handlers ran on {low + 1}..{high}, crashed before the commit"
        except _ScenarioRaised as raised:
            raise raised.error from None
        finally:
            lane_processor.store = self.store
        if isinstance(action, CrashInBatch):
            return f"{text}; {self.crash()}"
        if isinstance(action, CommandInBatch):
            if commanded:
                return f"{commanded[0]} (before the commit); {text}"
            return f"{text}; {self.command()}"
        return text

    def attempt(self, lane_processor: LaneProcessor) -> tuple[str, bool]:
        """One step; (what happened, whether it wrote or failed)."""
        try:
            result = lane_processor.step()
        except HandlerFailed as failure:
            lane_processor.clear_failure()
            cause = f"{failure.event_type} failed: {failure.__cause__!r}"
            return self.failed(lane_processor, failure.position, cause), True
        except SimulatedCommitFailure:
            return "commit failed (simulated store blip), nothing written", True
        except LeaseLost as lost:
            self.fenced += 1
            return f"fenced out (epoch {lost.epoch} is over), nothing written", True
        except Exception as error:  # an emit conflict, an invalid effect...
            position = lane_processor.checkpoint() + 1
            cause = f"{type(error).__name__}: {error}"
            return self.failed(lane_processor, position, cause), True
        self.failures.pop((lane_processor.name, lane_processor.lane), None)
        if result.progressed:
            return (
                f"scanned {result.scanned}, handled {result.handled}, "
                f"checkpoint {result.checkpoint}",
                True,
            )
        if result.waiting_on is not None:
            return f"waiting on {result.waiting_on} at {result.checkpoint}", False
        return f"idle at {result.checkpoint}", False

    def failed(self, lane_processor: LaneProcessor, position: int, cause: str) -> str:
        key = (lane_processor.name, lane_processor.lane)
        last_position, count = self.failures.get(key, (position, 0))
        count = count + 1 if last_position == position else 1
        self.failures[key] = (position, count)
        if count == self.stuck_after:
            self.pending.append(
                f"stuck: {lane_processor.name} failed {count} times in a row at "
                f"{lane_processor.lane}:{position}: {cause}"
            )
        return f"at {lane_processor.lane}:{position} {cause} (failure {count} in a row)"

    # -- processors -------------------------------------------------------------------------

    def rebuild(self) -> None:
        declared = self.scenario.processors(self.store)
        by_name = {item.name: item for item in declared}
        self.names = validate_graph(declared, self.store.registry)
        self.lanes = {
            name: [
                LaneProcessor(self.store, by_name[name], lane, scheduled=True)
                for lane in range(self.lane_count)
            ]
            for name in self.names
        }

    def lane_processor(self, name: str, lane: int) -> LaneProcessor:
        lanes = self.lanes.get(name)
        if lanes is None:
            raise UnknownProcessor(name)
        if not 0 <= lane < self.lane_count:
            raise ValueError(f"lane {lane} of {name!r}: the store has {self.lane_count} lane(s)")
        return lanes[lane]

    def describe_checkpoints(self) -> str:
        heads = [self.store.head(lane) for lane in range(self.lane_count)]
        parts = [f"heads {heads}"]
        for name in self.names:
            checkpoints = [self.store.checkpoint(name, lane) for lane in range(self.lane_count)]
            parts.append(f"{name} {checkpoints}")
        return ", ".join(parts)

    def behind(self) -> str:
        shortfalls: list[str] = []
        for name in self.names:
            total = sum(
                self.store.head(lane) - self.store.checkpoint(name, lane)
                for lane in range(self.lane_count)
            )
            if total:
                shortfalls.append(f"{name} {total} behind")
        return ", ".join(shortfalls) or "still writing"
