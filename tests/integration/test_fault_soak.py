"""The shop survives faults, on a real PostgreSQL server with ≥ 3 real worker processes and on
a real SQLite file: short seeded runs of the schedules `python -m bench.soak` runs by the
thousand (tests/faults/). Set ``TILLFLOW_FAULT_SEED`` to explore other seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.postgres import KINDS, PostgresFaultRun, PostgresPlan
from tests.faults.sqlite import SqliteKillRun, SqlitePlan

SEED = int(os.environ.get("TILLFLOW_FAULT_SEED", "20261205"))


@pytest.mark.timeout(180)
def test_workers_killed_paused_added_removed_and_a_database_restart_lose_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = PostgresFaultRun(PostgresPlan(faults=16, seed=SEED), tmp_path).run()
    assert outcome.violations == []
    assert outcome.unfenced == []
    assert all(outcome.survived[kind] == 4 for kind in KINDS), outcome.summary()
    assert outcome.survived["database restart"] == 1
    assert outcome.checkouts > 500 and outcome.commits > 100, outcome.summary()
    with capsys.disabled():
        print(f"\n{outcome.summary()}")


@pytest.mark.timeout(120)
def test_the_fence_audit_catches_a_worker_committing_without_its_lease(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Negative control: the same workers with the fence taken out of their commits; a
    worker woken past its lease commits, and the audit says so."""
    plan = PostgresPlan(faults=8, seed=SEED, restarts=0, kinds=("pause",), unfenced=True)
    outcome = PostgresFaultRun(plan, tmp_path).run(postgres_url)
    assert outcome.unfenced, f"the audit missed every stale commit: {outcome.summary()}"
    with capsys.disabled():
        print(f"\nfence audit, negative control: {outcome.summary()}\n  {outcome.unfenced[0]}")


@pytest.mark.timeout(120)
def test_the_sqlite_shop_sigkilled_at_random_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = SqliteKillRun(SqlitePlan(kills=20, seed=SEED), tmp_path).run()
    assert outcome.violations == []
    assert outcome.kills["ringing up"] >= 5 and outcome.behind >= 5, outcome.summary()
    with capsys.disabled():
        print(f"\n{outcome.summary()}")
