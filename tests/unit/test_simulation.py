"""The deterministic interleaving simulator, on small toy scenarios (it knows nothing of shops).

``Orders``: commands append orders; ``up`` emits an effect per order; ``down`` (after ``up``)
counts an order only if it finds the effect, and counts it as "missing" otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgspec
import pytest

from tillflow.engine import (
    EventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
    UnknownProcessor,
    id_from_key,
)
from tillflow.testing import (
    Action,
    Command,
    CommandInBatch,
    Crash,
    CrashInBatch,
    FailCommit,
    Scenario,
    Step,
    Weights,
    explore,
    shrink,
    simulate,
)

# -- the toy scenarios ---------------------------------------------------------------------


def _count(store: EventStore, view: str, key: str) -> int:
    raw = store.read_view(view, key)
    return 0 if raw is None else int(msgspec.json.decode(raw))


def _bump(session: Session, view: str, key: str) -> None:
    session.put(view, key, (session.get(view, key) or 0) + 1)


@dataclass
class Orders:
    """The barrier scenario. ``poison``: ``up`` fails on that order, always."""

    barrier: bool = True
    poison: int | None = None
    placed: int = 0
    poison_at: tuple[int, int] | None = None

    def processors(self, store: EventStore) -> list[Processor]:
        def up(event: RecordedEvent, session: Session) -> None:
            if event.payload()["n"] == self.poison:
                raise ValueError("cannot digest this order")
            session.emit(f"effect-{event.stream}", "Effect", {"order": event.stream})
            _bump(session, "counts", "up")

        def down(event: RecordedEvent, session: Session) -> None:
            found = store.find_by_causation(event.id)
            _bump(session, "counts", "down" if found else "missing")

        return [
            Processor("up", up, types=frozenset({"Order"}), batch_size=3),
            Processor(
                "down",
                down,
                types=frozenset({"Order"}),
                after=("up",) if self.barrier else (),
                batch_size=2,
            ),
        ]

    def command(self, rng: random.Random, store: EventStore) -> str:
        count = rng.randint(1, 3)
        for _ in range(count):
            n = self.placed
            event = NewEvent("Order", {"n": n}, id=id_from_key("order", str(n)))
            receipt = store.append(f"order-{n}", [event])
            if n == self.poison:
                [(lane, position)] = receipt.positions.items()
                self.poison_at = (lane, position)
            self.placed += 1
        return f"placed {count} order(s), {self.placed} in all"

    def check(self, store: EventStore) -> list[str]:
        problems: list[str] = []
        missing = _count(store, "counts", "missing")
        if missing:
            problems.append(f"down counted {missing} order(s) whose effect was missing")
        for key in ("up", "down"):
            if _count(store, "counts", key) > self.placed:
                problems.append(f"{key} counted more orders than the {self.placed} placed")
        if self.poison_at is not None:
            lane, position = self.poison_at
            if store.checkpoint("up", lane) >= position:
                problems.append(f"up passed the poison order at {lane}:{position}")
        return problems

    def check_final(self, store: EventStore) -> list[str]:
        counts = {key: _count(store, "counts", key) for key in ("up", "down")}
        if counts != {"up": self.placed, "down": self.placed}:
            return [f"counts {counts} after the drain, {self.placed} orders placed"]
        return []


@dataclass
class Tally:
    """``tally`` writes a row per event it scans and keeps a count in memory (a cache).
    ``check``: the rows of a lane are exactly the positions up to its checkpoint — a batch
    whose rows and checkpoint did not land together would show. ``leaky``: the handler also
    records what it saw outside the session (a side effect no transaction covers)."""

    leaky: bool = False
    seen_outside: set[tuple[int, int]] = field(default_factory=set)
    lanes: int = 0

    def processors(self, store: EventStore) -> list[Processor]:
        self.lanes = store.lane_count

        def tally(event: RecordedEvent, session: Session) -> None:
            session.put("seen", f"{event.lane}:{event.position:06d}", True)
            if self.leaky:
                self.seen_outside.add((event.lane, event.position))

        return [Processor("tally", tally, batch_size=4)]

    def command(self, rng: random.Random, store: EventStore) -> str:
        count = rng.randint(1, 4)
        stream = f"tick-{rng.randrange(10)}"
        store.append(stream, [NewEvent("Tick", {"i": i}) for i in range(count)])
        return f"{count} tick(s) on {stream}"

    def check(self, store: EventStore) -> list[str]:
        problems: list[str] = []
        rows = {key for key, _ in store.view_rows("seen")}
        for lane in range(self.lanes):
            checkpoint = store.checkpoint("tally", lane)
            expected = {f"{lane}:{position:06d}" for position in range(1, checkpoint + 1)}
            found = {key for key in rows if key.startswith(f"{lane}:")}
            if found != expected:
                problems.append(
                    f"lane {lane}: checkpoint {checkpoint} but rows for "
                    f"{len(found)} positions (half-applied batch)"
                )
            beyond = sorted(p for lane_of, p in self.seen_outside if lane_of == lane)
            if beyond and beyond[-1] > checkpoint:
                problems.append(
                    f"lane {lane}: an effect of position {beyond[-1]} landed outside the "
                    f"checkpoint {checkpoint}"
                )
        return problems

    def check_final(self, store: EventStore) -> list[str]:
        return []


def _orders(barrier: bool = True) -> Scenario:
    return Orders(barrier=barrier)


# -- determinism and replay -----------------------------------------------------------------


def test_the_same_seed_gives_the_same_run() -> None:
    first = simulate(Orders(), seed=42)
    second = simulate(Orders(), seed=42)
    assert first.ok, first.report()
    assert first.trace == second.trace
    assert first.actions == second.actions
    assert (first.lane_count, first.crashes) == (second.lane_count, second.crashes)
    assert simulate(Orders(), seed=43).trace != first.trace


def test_a_run_uses_every_kind_of_action_and_several_lane_counts() -> None:
    results = [simulate(Orders(), seed) for seed in range(30)]
    kinds = {type(action) for result in results for action in result.actions}
    assert kinds == {Command, Step, Crash, CrashInBatch, FailCommit, CommandInBatch}
    assert {result.lane_count for result in results} == {1, 2, 3}
    assert all(result.trace[-1].split()[1] == "drained:" for result in results)


def test_the_actions_of_a_run_replay_it_as_a_schedule() -> None:
    original = simulate(Orders(), seed=7, steps=120)
    replayed = simulate(Orders(), seed=7, lane_count=original.lane_count, schedule=original.actions)
    assert replayed.trace == original.trace


def test_a_chosen_schedule_runs_exactly_the_given_actions() -> None:
    schedule: list[Action] = [
        Command(),
        Step("down", 0),
        Step("up", 0),
        CrashInBatch("down", 0),
        Step("down", 0),
        Crash(),
        FailCommit("up", 0),
    ]
    result = simulate(Orders(), seed=1, lane_count=1, schedule=schedule, drain=False)
    assert result.ok, result.report()
    assert result.actions == schedule
    assert [line.split(":")[0].split(None, 1)[1] for line in result.trace] == [
        str(action) for action in schedule
    ]
    assert "waiting on up" in result.trace[1]
    assert "crashed before the commit" in result.trace[3]
    assert result.crashes == 2


def test_a_schedule_naming_an_unknown_processor_is_refused_with_the_seed() -> None:
    with pytest.raises(UnknownProcessor) as caught:
        simulate(Orders(), seed=3, schedule=[Command(), Step("nobody", 0)])
    assert "seed 3" in "\n".join(caught.value.__notes__)


# -- the barrier, and its negative control --------------------------------------------------


def test_the_barrier_holds_on_hundreds_of_seeds() -> None:
    failures = explore(Orders, range(500))
    assert failures == [], failures[0].report()


def test_without_the_barrier_the_simulator_finds_the_race_and_replays_it() -> None:
    failures = explore(lambda: _orders(barrier=False), range(100), stop_after=3)
    assert failures, "no seed broke the scenario without its barrier: the check proves nothing"
    failing = failures[0]
    assert "effect was missing" in failing.violations[0].message
    report = failing.report()
    assert f"seed {failing.seed}" in report
    assert failing.replay_hint() in report
    again = simulate(_orders(barrier=False), seed=failing.seed, lane_count=failing.lane_count)
    assert again.trace == failing.trace
    assert again.violations == failing.violations
    assert simulate(Orders(barrier=True), seed=failing.seed).ok


def test_shrinking_keeps_a_failure_and_drops_actions() -> None:
    [failing] = explore(lambda: _orders(barrier=False), range(100), stop_after=1)
    smaller = shrink(lambda: _orders(barrier=False), failing)
    assert not smaller.ok
    assert len(smaller.actions) < len(failing.actions)
    assert len(smaller.actions) <= 6, smaller.report()


# -- atomic batches under crashes -----------------------------------------------------------


def test_a_crash_inside_a_batch_never_leaves_it_half_applied() -> None:
    weights = Weights(crash_in_batch=3.0, fail_commit=2.0)
    results = [simulate(Tally(), seed, weights=weights) for seed in range(200)]
    assert [result.report() for result in results if not result.ok] == []
    crashed = sum("crashed before the commit" in line for r in results for line in r.trace)
    assert crashed > 200  # the faults did hit batches whose handlers had run


def test_an_effect_outside_the_session_is_caught_by_a_crash_inside_a_batch() -> None:
    """Negative control: the check above can fail, and it takes a fault inside a batch."""
    failures = explore(lambda: Tally(leaky=True), range(100), stop_after=1)
    assert failures, "a side effect outside the transaction went unnoticed"
    assert "landed outside the checkpoint" in failures[0].violations[0].message
    assert failures[0].violations[0].action.startswith(("crash_in_batch", "fail_commit"))
    clean = Weights(crash_in_batch=0, fail_commit=0)
    assert explore(lambda: Tally(leaky=True), range(100), weights=clean) == []


# -- failures -------------------------------------------------------------------------------


def test_a_handler_that_always_fails_on_one_event_is_reported_stuck() -> None:
    failures = explore(lambda: Orders(poison=4), range(20))
    assert len(failures) == 20  # every seed places the poison order before the drain ends
    for failing in failures:
        [violation] = failing.violations
        assert violation.message.startswith("stuck: up failed 10 times in a row at ")
        assert "cannot digest this order" in violation.message
        assert any("(failure 1 in a row)" in line for line in failing.trace)


def test_the_drain_reports_a_stuck_processor_rather_than_skipping_its_event() -> None:
    scenario = Orders(poison=0)
    result = simulate(scenario, seed=5, lane_count=1, schedule=[Command()], stuck_after=3)
    [violation] = result.violations
    assert violation.action == "drain step up@0"
    assert violation.message.startswith("stuck: up failed 3 times in a row at 0:1")
    store_checkpoint_line = [line for line in result.trace if "drain step up@0" in line]
    assert len(store_checkpoint_line) == 3


def test_a_command_inside_a_batch_that_breaks_its_emit_is_retried_until_it_commits() -> None:
    """``up`` emits with an expected version; a command writing the same stream between the
    handler and the commit makes the commit conflict: recorded, retried, not lost."""

    class Guarded(Orders):
        def processors(self, store: EventStore) -> list[Processor]:
            def up(event: RecordedEvent, session: Session) -> None:
                stream = f"effect-{event.stream}"
                session.emit(stream, "Effect", {}, expected_version=store.stream_version(stream))
                _bump(session, "counts", "up")

            return [Processor("up", up, types=frozenset({"Order"}))]

        def command(self, rng: random.Random, store: EventStore) -> str:
            store.append("effect-order-0", [NewEvent("Noise")])
            return super().command(rng, store) + ", noise on effect-order-0"

        def check_final(self, store: EventStore) -> list[str]:
            up = _count(store, "counts", "up")
            return [] if up == self.placed else [f"up counted {up} of {self.placed}"]

    schedule: list[Action] = [Command(), CommandInBatch("up", 0), Step("up", 0)]
    result = simulate(Guarded(), seed=2, lane_count=1, schedule=schedule)
    assert result.ok, result.report()
    assert "ConcurrencyConflict" in result.trace[1]
    assert "checkpoint" in result.trace[2]


def test_a_drain_that_never_ends_is_reported() -> None:
    class Echo(Orders):
        def processors(self, store: EventStore) -> list[Processor]:
            def echo(event: RecordedEvent, session: Session) -> None:
                session.emit(event.stream, "Order", {"n": -1})

            return [Processor("echo", echo)]

    result = simulate(Echo(), seed=1, lane_count=1, schedule=[Command()], drain_rounds=50)
    [violation] = result.violations
    assert violation.message.startswith("did not converge in 50 rounds: echo ")


def test_an_error_in_the_scenarios_command_inside_a_batch_is_raised_not_blamed_on_the_step() -> (
    None
):
    class Clumsy(Orders):
        def command(self, rng: random.Random, store: EventStore) -> str:
            if self.placed:
                raise KeyError("the scenario itself is broken")
            return super().command(rng, store)

    with pytest.raises(KeyError) as caught:
        simulate(Clumsy(), seed=4, lane_count=1, schedule=[Command(), CommandInBatch("up", 0)])
    assert "seed 4, action 2" in "\n".join(caught.value.__notes__)
