"""The deterministic interleaving simulator: a seeded scheduler that runs a scenario's
processors in chosen interleavings of commands, single steps and crashes, on the memory
backend, and checks the scenario's properties after every action. No threads, no asyncio,
no clock: one seed always replays the same run.

::

    Random(seed) ─► action ─┬─ Command ──────────── scenario.command(rng, store)
                            ├─ Step(p, lane) ────── exactly one LaneProcessor.step()
                            ├─ Crash ───────────── drop every LaneProcessor and handler; rebuild
                            │                       them with scenario.processors(store)
                            ├─ CrashInBatch(p, l) ─ handlers run, the process dies before commit
                            ├─ FailCommit(p, l) ─── handlers run, the commit fails, process lives
                            └─ CommandInBatch(p, l) handlers run, a command commits, then the batch
                                  │
                      scenario.check(store) after every action: the first violation stops the run
                                  │
              drain: steps round-robin until a full round is quiet ─► check + check_final

:func:`explore` runs many seeds and returns the failing results (``print(result)`` shows the
seed, the violations, the end of the trace and the call that replays it); :func:`shrink`
replays a failure on ever shorter schedules.

A handler failure or an emit conflict is recorded in the trace and the processor stays where
it is (a later step retries it, as the runtime does); the same event failing ``stuck_after``
times in a row is a violation. For exact replays a scenario must draw every choice from the
``rng`` it is given and must not depend on event ids or timestamps made by the store (give
command events ids from :func:`~tillflow.engine.ids.id_from_key` if it needs stable ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tillflow.engine.leased_simulator import LeasedSimulator
from tillflow.engine.simulator import (
    Action,
    Command,
    CommandInBatch,
    Crash,
    CrashInBatch,
    FailCommit,
    Scenario,
    Simulator,
    Step,
    Violation,
    Weights,
)
from tillflow.engine.store import EventRegistry
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
    WorkerWeights,
)

__all__ = [
    "Action",
    "Command",
    "CommandInBatch",
    "Crash",
    "CrashInBatch",
    "Elapse",
    "FailCommit",
    "Join",
    "Kill",
    "Leasing",
    "Leave",
    "Pause",
    "Scenario",
    "SimulationResult",
    "Step",
    "StepOn",
    "Tick",
    "Violation",
    "Wake",
    "Weights",
    "WorkerAction",
    "WorkerWeights",
    "explore",
    "shrink",
    "simulate",
]


@dataclass(frozen=True)
class SimulationResult:
    """One run. ``trace``: a line per action (quiet drain steps left out). ``actions``: the
    actions before the drain; ``simulate(..., seed=seed, lane_count=lane_count,
    schedule=actions)`` replays the run exactly. ``options``: the non-default keyword
    arguments of the run, as Python source, for :meth:`replay_hint`."""

    seed: int
    steps: int
    lane_count: int
    crashes: int
    trace: list[str]
    violations: list[Violation]
    actions: list[Action]
    options: str = ""
    fenced: int = 0
    """Batches refused by their fence (runs with leased workers)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def replay_hint(self) -> str:
        """The call that replays this run, e.g. ``simulate(scenario, seed=123, steps=200,
        lane_count=2)``."""
        return (
            f"simulate(scenario, seed={self.seed}, steps={self.steps}, "
            f"lane_count={self.lane_count}{self.options})"
        )

    def report(self, last: int = 30) -> str:
        """The seed, the violations, the last ``last`` trace lines and the replay call."""
        verdict = "ok" if self.ok else f"{len(self.violations)} violation(s)"
        fenced = f", {self.fenced} batches fenced out" if self.fenced else ""
        lines = [
            f"seed {self.seed}: {verdict} after {len(self.actions)} actions, "
            f"{self.crashes} crashes, {self.lane_count} lane(s){fenced}"
        ]
        lines += [f"  ✗ {violation}" for violation in self.violations]
        shown = self.trace[-last:] if last > 0 else []
        lines.append(f"last {len(shown)} of {len(self.trace)} trace lines:")
        lines += [f"  {line}" for line in shown]
        lines.append(f"replay: {self.replay_hint()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


# -- running --------------------------------------------------------------------------------


def simulate(
    scenario: Scenario,
    seed: int,
    steps: int = 200,
    *,
    lane_count: int | None = None,
    schedule: Sequence[Action] | None = None,
    weights: Weights | None = None,
    stuck_after: int = 10,
    drain: bool = True,
    drain_rounds: int = 10_000,
    registry: EventRegistry | None = None,
    leasing: Leasing | None = None,
) -> SimulationResult:
    """Run ``scenario`` for ``steps`` seeded random actions (or exactly ``schedule``), then
    drain; return what happened. Never raises for a property violation, a handler failure
    or a conflict: they are in the result.

    ``lane_count``: of the fresh :class:`MemoryEventStore` (default: chosen by the seed
    among 1..3; the choice is drawn either way, so passing the chosen count replays the
    run). ``stuck_after``: failures in a row on one event that make a "stuck" violation.
    ``drain_rounds``: rounds of the drain before "did not converge". ``leasing``: run the
    processors on several simulated workers sharing the lanes by leases, with their own
    actions and weights (``weights`` must then be left out); see
    :mod:`tillflow.engine.leased_simulator`.
    Exceptions raised by the scenario's own code (``command``, ``check``...) or by a bad
    ``schedule`` (:class:`UnknownProcessor`, ``ValueError`` for a lane) propagate, with a
    note giving the seed, the step and the end of the trace.
    """
    if stuck_after < 1 or drain_rounds < 1:
        raise ValueError("stuck_after and drain_rounds must be ≥ 1")
    if leasing is not None and weights is not None:
        raise ValueError("a run with leasing= takes its weights from Leasing.weights")
    chosen = weights or Weights()
    run: Simulator
    options = ""
    if leasing is None:
        run = Simulator(scenario, seed, lane_count, chosen, stuck_after, registry)
    else:
        run = LeasedSimulator(scenario, seed, lane_count, leasing, stuck_after, registry)
        options += f", leasing={leasing!r}"
    if chosen != Weights():
        options += f", weights={chosen!r}"
    if stuck_after != 10:
        options += f", stuck_after={stuck_after}"
    if schedule is not None:
        options += ", schedule=result.actions"
    try:
        run.play(schedule if schedule is not None else steps)
        if drain and not run.violations:
            run.drain(drain_rounds)
    except Exception as error:
        tail = "\n".join(f"  {line}" for line in run.trace[-10:])
        error.add_note(
            f"tillflow simulation: seed {seed}, action {run.count}, lane_count "
            f"{run.lane_count}; last trace lines:\n{tail}"
        )
        raise
    finally:
        run.close()
    return SimulationResult(
        seed=seed,
        steps=len(schedule) if schedule is not None else steps,
        lane_count=run.lane_count,
        crashes=run.crashes,
        trace=run.trace,
        violations=run.violations,
        actions=run.actions,
        options=options,
        fenced=run.fenced,
    )


def explore(
    make_scenario: Callable[[], Scenario],
    seeds: Iterable[int],
    steps: int = 200,
    stop_after: int | None = None,
    *,
    lane_count: int | None = None,
    weights: Weights | None = None,
    stuck_after: int = 10,
    leasing: Leasing | None = None,
) -> list[SimulationResult]:
    """Simulate a fresh scenario per seed; return the failing results (``[]``: every seed
    passed), stopping once ``stop_after`` have failed. Print one with ``print(result)``."""
    failures: list[SimulationResult] = []
    for seed in seeds:
        result = simulate(
            make_scenario(),
            seed,
            steps,
            lane_count=lane_count,
            weights=weights,
            stuck_after=stuck_after,
            leasing=leasing,
        )
        if not result.ok:
            failures.append(result)
            if stop_after is not None and len(failures) >= stop_after:
                break
    return failures


def shrink(
    make_scenario: Callable[[], Scenario],
    failing: SimulationResult,
    *,
    still_fails: Callable[[SimulationResult], bool] | None = None,
    stuck_after: int = 10,
    budget: int = 2_000,
    leasing: Leasing | None = None,
) -> SimulationResult:
    """A run of ``failing``'s seed on a shorter schedule that still fails: actions are
    removed, in halving chunks then one at a time, while ``still_fails`` (default: any
    violation) holds, for at most ``budget`` replays. Returns ``failing`` itself if nothing
    can go. Pass the ``stuck_after`` and ``leasing`` of the failing run."""

    def fails(result: SimulationResult) -> bool:
        return not result.ok and (still_fails is None or still_fails(result))

    best = failing
    actions = list(failing.actions)
    chunk = max(len(actions) // 2, 1)
    replays = 0
    while replays < budget:
        removed = False
        start = 0
        while start < len(actions) and replays < budget:
            candidate = actions[:start] + actions[start + chunk :]
            result = simulate(
                make_scenario(),
                failing.seed,
                lane_count=failing.lane_count,
                schedule=candidate,
                stuck_after=stuck_after,
                leasing=leasing,
            )
            replays += 1
            if fails(result):
                actions, best, removed = candidate, result, True
            else:
                start += chunk
        if chunk == 1 and not removed:
            break
        chunk = max(chunk // 2, 1)
    return best
