"""What the simulator does with several workers sharing lanes by leases
(``simulate(..., leasing=Leasing())``): the actions, how often each is chosen, and the run's
settings. Workers are named ``w1``, ``w2``... in the order they join; times are seconds of
the simulated clock, which moves only by :class:`Elapse`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Tick:
    """One round of ``worker``'s lease keeper, out of turn (its timer also ticks it every
    ``ttl / 3`` while the clock moves): heartbeat, renew, let go of lost lanes, hand the
    surplus over, take free lanes up to the fair share."""

    worker: str

    def __str__(self) -> str:
        return f"tick {self.worker}"


@dataclass(frozen=True, slots=True)
class StepOn:
    """Exactly one step of ``processor`` on ``lane`` by ``worker`` (if it believes it holds
    the lane), committing under its fence."""

    worker: str
    processor: str
    lane: int

    def __str__(self) -> str:
        return f"step {self.worker} {self.processor}@{self.lane}"


@dataclass(frozen=True, slots=True)
class Pause:
    """``worker`` stops (SIGSTOP): it stops ticking and stepping. It is stopped inside a
    step of ``processor`` on ``lane`` after the handlers ran, before the commit (if the
    step has a batch to commit and the worker holds the lane; else it stops idle)."""

    worker: str
    processor: str
    lane: int

    def __str__(self) -> str:
        return f"pause {self.worker} in {self.processor}@{self.lane}"


@dataclass(frozen=True, slots=True)
class Wake:
    """A paused ``worker`` goes on (SIGCONT): its stopped batch commits under the fence it
    was read under — after one round of its lease keeper if ``tick_first`` (the two run
    side by side in a worker, in either order)."""

    worker: str
    tick_first: bool = False

    def __str__(self) -> str:
        return f"wake {self.worker}" + (" (tick first)" if self.tick_first else "")


@dataclass(frozen=True, slots=True)
class Elapse:
    """The clock moves ``seconds`` on; every running worker's keeper ticks on its timer on
    the way; leases and heartbeats not renewed since expire."""

    seconds: float

    def __str__(self) -> str:
        return f"elapse {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class Join:
    """A new worker starts, with fresh processors and no lanes until it ticks."""

    def __str__(self) -> str:
        return "join"


@dataclass(frozen=True, slots=True)
class Leave:
    """``worker`` stops on SIGTERM: it resigns every lease at once."""

    worker: str

    def __str__(self) -> str:
        return f"leave {self.worker}"


@dataclass(frozen=True, slots=True)
class Kill:
    """``worker`` dies (SIGKILL), paused or not: a stopped batch dies with it, its leases
    stay until they expire."""

    worker: str

    def __str__(self) -> str:
        return f"kill {self.worker}"


def _changed_fields(settings: WorkerWeights | Leasing) -> str:
    """``Name(field=value, ...)`` with only the fields that differ from their defaults (a
    replay hint stays one line)."""
    default = type(settings)()
    changed = [
        f"{item.name}={getattr(settings, item.name)!r}"
        for item in fields(settings)
        if getattr(settings, item.name) != getattr(default, item.name)
    ]
    return f"{type(settings).__name__}({', '.join(changed)})"


WorkerAction: TypeAlias = Tick | StepOn | Pause | Wake | Elapse | Join | Leave | Kill
"""One thing the simulator does to its workers."""


@dataclass(frozen=True)
class WorkerWeights:
    """How often each action of a leased run is chosen, relative to the others."""

    command: float = 3.0
    step: float = 10.0
    tick: float = 1.5
    elapse: float = 1.5
    pause: float = 0.8
    wake: float = 0.6
    join: float = 0.3
    leave: float = 0.2
    kill: float = 0.2

    def __post_init__(self) -> None:
        values = [getattr(self, item.name) for item in fields(self)]
        if any(not value >= 0 for value in values) or sum(values) <= 0:
            raise ValueError("weights must be ≥ 0 and not all 0")

    def __repr__(self) -> str:
        return _changed_fields(self)


@dataclass(frozen=True)
class Leasing:
    """Run the scenario's processors on ``workers`` simulated workers (at the start) sharing
    the lanes by leases of ``ttl`` simulated seconds, at most ``most_workers`` at a time.
    ``runs``: the processors each worker runs, given to the workers in turn as they join
    (as ``tillflow worker --run``); empty, every worker runs all of them."""

    workers: int = 3
    ttl: float = 3.0
    most_workers: int = 5
    weights: WorkerWeights = field(default_factory=WorkerWeights)
    runs: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= self.most_workers:
            raise ValueError(
                f"workers must be 1..most_workers: {self.workers}, {self.most_workers}"
            )
        if not (math.isfinite(self.ttl) and self.ttl > 0):
            raise ValueError(f"a lease TTL must be a positive number of seconds: {self.ttl!r}")
        if any(not names for names in self.runs):
            raise ValueError(f"every worker of runs= runs at least one processor: {self.runs}")

    def __repr__(self) -> str:
        return _changed_fields(self)
