"""The shop's Inventory and report on several simulated workers sharing the lanes by leases:
workers pause inside a batch past their lease and wake to commit it, are taken over, join,
leave and die. Every property of the one-process shop is checked after every action (every
report row a consistent cut, read-your-writes by receipt, retries answered alike, the truth
at the end), with the lease audit; the negative controls commit without the fence.
``tillflow simulate --workers 3 --seeds 1000`` runs more seeds."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.demos.simulation import explore_shop, simulate_shop
from tillflow.engine import memory_leases
from tillflow.engine.leasing import Fence
from tillflow.engine.memory_leases import MemoryLeases
from tillflow.testing import Leasing, SimulationResult

WORKERS = Leasing()
LONE_WORKER = Leasing(workers=1, most_workers=1)
"""One worker at a time: paused past its lease, it takes its lanes back itself."""


def _explain(failures: list[SimulationResult]) -> str:
    return "\n\n".join(str(failure) for failure in failures[:3])


def _fence_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def holds(self: MemoryLeases, processor: str, lane: int, fence: Fence) -> bool:
        return True

    monkeypatch.setattr(MemoryLeases, "holds", holds)


def _fence_ignoring_the_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    def owner_only(self: MemoryLeases, processor: str, lane: int, fence: Fence) -> bool:
        lease = self.lease(processor, lane)
        return lease is not None and lease.owner == fence.owner and self.clock() < lease.expires

    monkeypatch.setattr(MemoryLeases, "holds", owner_only)


@pytest.mark.parametrize("chunk", range(2))
def test_the_shop_holds_on_leased_workers_under_every_schedule(chunk: int) -> None:
    failures = explore_shop("barrier", range(chunk * 35, chunk * 35 + 35), 200, 3, WORKERS)
    assert failures == [], _explain(failures)


def test_the_shop_holds_on_a_lone_worker_that_outlives_its_own_leases() -> None:
    failures = explore_shop("barrier", range(15), 200, 3, LONE_WORKER)
    assert failures == [], _explain(failures)


def test_the_leased_runs_really_take_over_fence_out_and_conflict() -> None:
    """Guard against a vacuous pass: what the schedules above go through."""
    seen: Counter[str] = Counter()
    markers = (
        "paused inside",  # a worker stopped inside a batch
        "expired",  # the clock ran past a lease
        "took",  # a lane changed hands
        "fenced out",  # a woken batch refused by its fence
        "ViewRowChanged",  # two lanes' batches on the report's totals
        "ConcurrencyConflict",  # two lanes' Inventory on one product's stream
        "died uncommitted",  # a worker killed inside a batch
        "resigned",
        "joined",
    )
    for seed in range(12):
        result = simulate_shop("barrier", seed, 200, WORKERS)
        assert result.ok, str(result)
        text = "\n".join(result.trace)
        seen.update({marker: text.count(marker) for marker in markers})
        seen["lanes > 1"] += result.lane_count > 1
    assert all(seen[marker] > 0 for marker in markers), seen
    assert seen["fenced out"] >= 5 and seen["lanes > 1"] >= 4, seen


def test_negative_control_commits_without_the_fence_are_caught_within_a_few_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fence_not_checked(monkeypatch)
    failures = explore_shop("barrier", range(10), 200, 1, WORKERS)
    assert failures, "batches committed under lost leases passed 10 schedules"
    [failure] = failures
    assert "landed under tenure" in str(failure), str(failure)
    replay = simulate_shop("barrier", failure.seed, 200, WORKERS)
    assert (replay.trace, replay.violations) == (failure.trace, failure.violations)


def test_negative_control_a_fence_ignoring_the_epoch_is_caught_within_a_few_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker took its lane back at a new epoch before its stopped batch committed;
    nobody committed in between, so only the epoch can refuse that batch."""
    _fence_ignoring_the_epoch(monkeypatch)
    failures = explore_shop("barrier", range(10), 200, 1, LONE_WORKER)
    assert failures, "a batch of an epoch that was over passed 10 schedules"
    assert "landed under tenure" in str(failures[0]), str(failures[0])


def test_negative_control_without_the_row_guard_a_stale_row_overwrites_a_newer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch stopped after reading a product's row commits it over what another lane's
    batch wrote since, unless the rows a batch read are checked at its commit."""
    monkeypatch.setattr(memory_leases, "changed_row", lambda store, effects: None)
    failures = explore_shop("barrier", range(20), 200, 1, WORKERS)
    assert failures, "rows overwritten by stale batches passed 20 schedules"
    caught = ("moved back", "truth is", "rows add up to")  # a row behind its totals, too
    assert any(what in str(failures[0]) for what in caught), str(failures[0])


def test_tillflow_simulate_runs_leased_workers_and_replays_a_failure_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["simulate", "--workers", "2", "--seeds", "2", "--steps", "60"])
    assert good.exit_code == 0, good.output
    assert "every property held" in good.output
    _fence_not_checked(monkeypatch)
    caught = runner.invoke(app, ["simulate", "--workers", "3", "--seeds", "5", "--steps", "200"])
    assert caught.exit_code == 1, caught.output
    seed = int(caught.output.rsplit("--replay", 1)[1].split()[0].strip("[/]"))
    assert f"--workers 3 --replay {seed}" in " ".join(caught.output.split())
    replay = runner.invoke(
        app, ["simulate", "--workers", "3", "--steps", "200", "--replay", str(seed)]
    )
    assert replay.exit_code == 1
    assert "landed under tenure" in replay.output


SPLIT = Leasing(runs=(("inventory",), ("reporting", "tills")))
"""Workers that run Inventory only or the report and the cash-up only (``tillflow worker
--run``)."""
OVERLAPPING = Leasing(runs=(("inventory", "reporting", "tills"), ("inventory",)))
"""Workers that run all three, and workers that run Inventory only."""


@pytest.mark.parametrize("leasing", [SPLIT, OVERLAPPING], ids=["split", "overlapping"])
def test_workers_running_different_processors_take_every_lane_between_them(
    leasing: Leasing,
) -> None:
    """Every property holds at every step, and once the drain is quiet every lane of each
    processor is held by a live worker that runs it (a group's fair share counts only
    those)."""
    failures = explore_shop("barrier", range(10), 200, 1, leasing)
    assert failures == [], _explain(failures)
