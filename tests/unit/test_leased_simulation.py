"""The simulator with leased workers, on the toy ``Orders`` scenario: workers pause inside a
batch past their lease, are taken over and fenced out; the lease audit and the scenario's
checks run after every action; negative controls show each guard is needed."""

from __future__ import annotations

import pytest

from tests.unit.test_simulation import Orders
from tillflow.engine import UnknownProcessor, memory_leases
from tillflow.engine.leasing import Fence
from tillflow.engine.memory_leases import MemoryLeases
from tillflow.engine.simulation import Elapse, Join, Kill, Leave, Pause, StepOn, Tick, Wake
from tillflow.testing import (
    Action,
    Command,
    Crash,
    Leasing,
    Scenario,
    SimulationResult,
    Weights,
    WorkerWeights,
    explore,
    shrink,
    simulate,
)

LEASING = Leasing()

TAKEOVER: list[Action] = [
    Command(),
    Tick("w1"),  # w1 alone alive: it takes the lane
    Pause("w1", "up", 0),  # stopped inside up's batch, before its commit
    Elapse(2.0),  # w2's timer ticks (0, 1, 2 s): the lane is w1's until 3 s
    Elapse(2.0),  # at 3 s w1's lease and heartbeat are over: w2 takes the lane
]
"""w1 is paused inside a batch until its lease is over and w2 holds the lane."""


def _orders() -> Scenario:
    return Orders()


def _run(schedule: list[Action], seed: int = 1) -> SimulationResult:
    return simulate(Orders(), seed, lane_count=1, schedule=schedule, leasing=Leasing(workers=2))


def _line(result: SimulationResult, action: str) -> str:
    """The trace line of ``action`` (played, not drained; the first if several)."""
    return next(line for line in result.trace if line.split(maxsplit=1)[1].startswith(action))


def _fence_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def holds(self: MemoryLeases, processor: str, lane: int, fence: Fence) -> bool:
        return True

    monkeypatch.setattr(MemoryLeases, "holds", holds)


# -- a scripted takeover --------------------------------------------------------------------


def test_a_worker_woken_past_its_lease_is_fenced_out_and_the_new_holder_goes_on() -> None:
    result = _run([*TAKEOVER, StepOn("w2", "up", 0), Wake("w1"), StepOn("w2", "up", 0)])
    assert result.ok, str(result)
    assert "paused inside the batch up@0:1.." in _line(result, "pause w1 in up@0")
    assert "w2 at 3 s holds [0], took [0]" in result.trace[4]
    assert "fenced out (epoch 1 is over), nothing written" in _line(result, "wake w1")
    assert result.fenced == 1


def test_a_worker_that_takes_its_lane_again_still_cannot_commit_its_old_batch() -> None:
    """Woken, w1's keeper ticks before the stopped batch commits and takes the lane back at
    a new epoch (w2 has gone): the checkpoint has not moved, only the epoch tells."""
    schedule = [*TAKEOVER, Leave("w2"), Wake("w1", tick_first=True)]
    result = _run(schedule)
    assert result.ok, str(result)
    line = _line(result, "wake w1 (tick first)")
    assert "took [0]" in line and "fenced out (epoch 1 is over)" in line


def test_without_the_fence_a_stale_batch_landing_under_another_lease_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fence_not_checked(monkeypatch)
    result = _run([*TAKEOVER, Wake("w1")])
    assert not result.ok
    [violation] = result.violations
    assert violation.action == "wake w1"
    assert (
        "landed under tenure 1 (epoch 1) at 4 s, but tenure 2 is w2's and runs until 7 s"
        in violation.message
    )


def test_a_fence_ignoring_the_epoch_is_caught_when_the_owner_takes_its_lane_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def owner_only(self: MemoryLeases, processor: str, lane: int, fence: Fence) -> bool:
        lease = self.lease(processor, lane)
        return lease is not None and lease.owner == fence.owner and self.clock() < lease.expires

    monkeypatch.setattr(MemoryLeases, "holds", owner_only)
    result = _run([*TAKEOVER, Leave("w2"), Wake("w1", tick_first=True)])
    assert not result.ok
    assert "landed under tenure 1 (epoch 1) at 4 s, but tenure 3 is w1's" in str(result)


def test_a_killed_worker_s_stopped_batch_dies_and_its_lanes_are_taken_after_expiry() -> None:
    schedule: list[Action] = [Command(), Tick("w1"), Pause("w1", "up", 0), Kill("w1")]
    result = _run([*schedule, Elapse(2.0), Tick("w2"), Elapse(1.5), StepOn("w2", "up", 0)])
    assert result.ok, str(result)
    assert "died uncommitted" in _line(result, "kill w1")
    assert "took [0]" in _line(result, "elapse 1.5 s")
    assert "placed 3 order(s)" in _line(result, "command")
    assert "scanned 3, handled 3, checkpoint 3" in _line(result, "step w2 up@0")  # from 0
    assert result.crashes == 1


def test_a_worker_that_leaves_hands_its_lanes_over_at_once() -> None:
    schedule: list[Action] = [Command(), Tick("w1"), Leave("w1"), Tick("w2"), StepOn("w2", "up", 0)]
    result = _run(schedule)
    assert result.ok, str(result)
    assert "resigned lanes [0]" in _line(result, "leave w1")
    assert "took [0]" in _line(result, "tick w2")


# -- random schedules -----------------------------------------------------------------------


def test_the_barrier_and_the_counts_hold_with_leased_workers_on_many_seeds() -> None:
    failures = explore(_orders, range(80), 150, stop_after=1, leasing=LEASING)
    assert failures == [], str(failures[0])


def test_random_runs_take_over_fence_out_join_leave_and_kill() -> None:
    """Guard against a vacuous pass."""
    kinds: set[str] = set()
    fenced = 0
    for seed in range(6):
        result = simulate(Orders(), seed, 200, lane_count=3, leasing=LEASING)
        assert result.ok, str(result)
        fenced += result.fenced
        text = "\n".join(result.trace)
        for marker in ("took", "expired", "paused inside", "ViewRowChanged", "joined"):
            if marker in text:
                kinds.add(marker)
        kinds |= {type(action).__name__ for action in result.actions}
    assert fenced > 0
    expected = {"took", "expired", "paused inside", "ViewRowChanged", "joined"}
    assert expected | {"Kill", "Leave", "Wake", "Tick", "StepOn", "Elapse"} <= kinds


def test_a_leased_run_replays_from_its_seed_and_from_its_actions() -> None:
    first = simulate(Orders(), 7, 150, leasing=LEASING)
    again = simulate(Orders(), 7, 150, leasing=LEASING)
    assert again.trace == first.trace
    replay = simulate(
        Orders(), 7, lane_count=first.lane_count, schedule=first.actions, leasing=LEASING
    )
    assert replay.trace == first.trace
    assert "leasing=Leasing()" in first.replay_hint()


def test_without_the_row_guard_two_lanes_overwrite_each_other_s_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative control: a batch paused after reading the shared counts row commits over
    another lane's batch unless the rows it read are checked at commit."""
    monkeypatch.setattr(memory_leases, "changed_row", lambda store, effects: None)
    failures = explore(_orders, range(40), 150, stop_after=1, lane_count=3, leasing=LEASING)
    assert failures, "a lost update of a row shared by lanes went unnoticed"
    assert "after the drain" in str(failures[0]) or "more orders" in str(failures[0])


def test_without_the_fence_random_runs_are_caught_within_a_few_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fence_not_checked(monkeypatch)
    failures = explore(_orders, range(20), 150, stop_after=1, leasing=LEASING)
    assert failures, "commits under lost leases went unnoticed"
    shorter = shrink(_orders, failures[0], leasing=LEASING, budget=300)
    assert not shorter.ok
    assert len(shorter.actions) <= len(failures[0].actions)
    assert "landed under tenure" in str(shorter)


# -- bad input ------------------------------------------------------------------------------


def test_leasing_takes_its_own_weights() -> None:
    with pytest.raises(ValueError, match=r"Leasing\.weights"):
        simulate(Orders(), 1, leasing=LEASING, weights=Weights())
    with pytest.raises(ValueError, match="weights"):
        WorkerWeights(tick=-1)


@pytest.mark.parametrize(
    ("workers", "ttl", "most"), [(0, 3.0, 5), (6, 3.0, 5), (1, 0.0, 5), (1, float("nan"), 5)]
)
def test_bad_leasing_settings_are_refused(workers: int, ttl: float, most: int) -> None:
    with pytest.raises(ValueError):
        Leasing(workers=workers, ttl=ttl, most_workers=most)


def test_workers_given_no_processor_or_an_unknown_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one processor"):
        Leasing(runs=(("up",), ()))
    with pytest.raises(UnknownProcessor):
        simulate(Orders(), 1, leasing=Leasing(runs=(("up",), ("sideways",))))


def test_a_worker_running_only_up_is_not_asked_to_step_down() -> None:
    result = simulate(Orders(), 3, 120, leasing=Leasing(runs=(("up",), ("down",))))
    steps = [a for a in result.actions if isinstance(a, StepOn | Pause)]
    assert steps and all((int(a.worker[1:]) % 2 == 1) == (a.processor == "up") for a in steps)
    with pytest.raises(ValueError, match="w1 does not run 'down'"):
        simulate(
            Orders(),
            1,
            lane_count=1,
            schedule=[Tick("w1"), StepOn("w1", "down", 0)],
            leasing=Leasing(runs=(("up",), ("down",))),
        )


def test_actions_of_the_wrong_kind_are_refused_with_the_seed() -> None:
    with pytest.raises(ValueError, match="leasing=") as refused:
        simulate(Orders(), 1, lane_count=1, schedule=[Tick("w1")])
    assert "seed 1" in str(refused.value.__notes__)
    with pytest.raises(ValueError, match="not an action of leased workers"):
        _run([Crash()])
    with pytest.raises(UnknownProcessor):
        _run([Tick("w1"), StepOn("w1", "sideways", 0)])
    with pytest.raises(ValueError, match="lane 4"):
        _run([Tick("w1"), Pause("w1", "up", 4)])


def test_actions_aimed_at_workers_that_are_gone_or_paused_do_nothing() -> None:
    result = _run([Kill("w1"), Tick("w1"), Join(), Pause("w3", "up", 0), Tick("w3"), Wake("w2")])
    assert result.ok, str(result)
    assert "w1 is not running" in _line(result, "tick w1")
    assert "w3 is paused" in _line(result, "tick w3")
    assert "w2 is not paused" in _line(result, "wake w2")
