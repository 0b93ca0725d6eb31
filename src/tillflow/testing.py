"""What to import to test your own processors: fault injection and the deterministic simulator.

::

    FaultyStore(store, hook)        wraps any EventStore and runs hook() before each batch
                                    commit: raise SimulatedCrash (the process died),
                                    SimulatedCommitFailure (the store blipped), or write
    simulate(scenario, seed)        one seeded schedule of commands, single steps and
                                    crashes; the scenario's properties checked after each
    simulate(leasing=Leasing())     the same on workers sharing the lanes by leases: paused
                                    past their expiry, taken over, fenced out
    explore(make_scenario, seeds)   many seeds; returns the failing results, each replayable
    shrink(make_scenario, failing)  a shorter schedule that still fails

A :class:`Scenario` says which processors run, which commands happen and what must hold.
None of this is needed to run tillflow; the engine's own tests and the shop's use it too.
"""

from tillflow.engine.faults import FaultyStore, SimulatedCommitFailure, SimulatedCrash
from tillflow.engine.simulation import (
    Action,
    Command,
    CommandInBatch,
    Crash,
    CrashInBatch,
    FailCommit,
    Leasing,
    Scenario,
    SimulationResult,
    Step,
    Violation,
    Weights,
    WorkerWeights,
    explore,
    shrink,
    simulate,
)

__all__ = [
    "Action",
    "Command",
    "CommandInBatch",
    "Crash",
    "CrashInBatch",
    "FailCommit",
    "FaultyStore",
    "Leasing",
    "Scenario",
    "SimulatedCommitFailure",
    "SimulatedCrash",
    "SimulationResult",
    "Step",
    "Violation",
    "Weights",
    "WorkerWeights",
    "explore",
    "shrink",
    "simulate",
]
