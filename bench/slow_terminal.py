"""Case 6c: many tills paying by card through a slow terminal, against one till alone.

::

    one event loop, as tillflow serve answers concurrent requests
      till 0  ─┐  checkout_recorded_async ──► terminal.authorize (200 ms, awaited) ──► append
      till 1  ─┤        (card, the exact total)
       ...     ├──► Sale ──► SQLite (durable) ──► Inventory ──► the report
      till 63 ─┘

Each till rings up its checkouts one after the other (closed loop: the next when the last
is recorded); the phase is timed from the first send until the last till's last receipt.
One run seeds a fresh shop and times a phase of one till and a phase of ``tills`` tills
(which goes first alternates by repeat), each till ringing up the same number of checkouts,
so the ideal ratio of the rates is ``tills``. Afterwards, untimed: the report must reflect
every checkout, the consistent-cut audit and the truth hold, every checkout took its own
position, the terminal authorized each checkout's key once and charged exactly the card
tenders recorded (:class:`bench.paying.PaidCheckouts`).

The target is half the ideal (≥ 32× for 64 tills): besides its 200 ms at the terminal, each
checkout spends a little of the one event loop (pricing, two reads, the append's hand-off)
and waits for a shared commit, and 64 tills finishing together queue for those — on a busy
2-core machine, more so. Half the ideal leaves room for that, while authorizations that were
serialized anywhere (a lock, one worker thread, a pool of a few) would stay at a few × at
most: 32× needs at least 32 authorizations in flight at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from bench.cases import Context, scratch
from bench.paying import PaidCheckouts, by_card
from bench.report import CaseResult, rate
from bench.shop import (
    REPORTING,
    Status,
    Tills,
    _at,
    _settle_seeding,
    audited,
    ended_by,
    judged,
    percentile,
    summary,
    with_tuned_collector,
)
from tillflow.engine import SqliteEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal

TERMINAL_LATENCY: Final = 0.2
"""Seconds the terminal takes to answer an authorization (the issue's slow terminal)."""
RATIO_TARGET: Final = 32.0


@dataclass
class Phase:
    """Some tills ringing up their checkouts at once."""

    tills: int
    checkouts: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Milliseconds from each checkout's send to its receipt."""
    positions: set[int] = field(default_factory=set)
    """The positions the checkouts took in the log."""

    @property
    def rate(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TerminalRun:
    """One run: the phase of one till and the phase of many. Only an ``ok`` run's figures
    mean anything."""

    tills: int
    status: Status = "ok"
    detail: str = ""
    alone: Phase = field(default_factory=lambda: Phase(1))
    together: Phase = field(default_factory=lambda: Phase(0))
    payments: str = ""

    @property
    def ratio(self) -> float:
        return self.together.rate / self.alone.rate if self.alone.rate else 0.0


async def ring_up(tills: Tills, paid: PaidCheckouts, phase: Phase, per_till: int) -> None:
    """``phase.tills`` tills at once, each ringing up ``per_till`` checkouts by card, one
    after the other; the checkouts are numbered on from ``tills.issued``."""
    sale, first = tills.shop.sale, tills.issued
    tills.issued += phase.tills * per_till

    async def till(which: int) -> None:
        for offset in range(per_till):
            number = first + which * per_till + offset
            command, expected = tills.command(number)
            command = msgspec.structs.replace(command, till_id=f"till-{which:02d}")
            command = paid.paying(command, by_card(number, expected.total))
            sent = time.perf_counter()
            receipt, recorded = await sale.checkout_recorded_async(command)
            phase.latencies.append((time.perf_counter() - sent) * 1000)
            paid.recorded(recorded)
            phase.positions.add(tills.record(number, receipt, command.checkout_id))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for which in range(phase.tills):
            group.create_task(till(which))
    phase.seconds = time.perf_counter() - started
    phase.checkouts = phase.tills * per_till


@with_tuned_collector
async def run_against_terminal(
    path: Path,
    tills: int,
    per_till: int,
    *,
    together_first: bool = False,
    latency: float = TERMINAL_LATENCY,
    seed: int = 1,
    timeout: float = 60.0,
) -> TerminalRun:
    """Seed a fresh shop on ``path``, time one till and then ``tills`` tills (or the other
    way round) ringing up ``per_till`` checkouts each by card through a terminal answering
    after ``latency`` seconds; then verify, untimed (see the module docstring)."""
    store = SqliteEventStore(path, durability="full", registry=REGISTRY)
    terminal = SimulatedTerminal(latency=latency)
    cashiers = Tills(store, seed, terminal=terminal)
    paid = PaidCheckouts(terminal)
    run = TerminalRun(tills, together=Phase(tills))
    try:
        async with cashiers.shop.runtime() as runtime:
            try:
                await _settle_seeding(runtime, await asyncio.to_thread(cashiers.seed))
                order = [run.together, run.alone] if together_first else [run.alone, run.together]
                for phase in order:
                    await ring_up(cashiers, paid, phase, per_till)
                outcome = await runtime.wait_for(_at(cashiers.last_position), [REPORTING], timeout)
                if not outcome.reached:
                    run.status = "stalled" if outcome.status == "timed_out" else "failed"
                    run.detail = f"the report did not reflect the last checkout: {outcome}"
                else:
                    await runtime.drain(timeout=timeout)
            except Exception as error:
                run.status, run.detail = ended_by(error)
        if run.status == "ok":
            checkouts = run.alone.checkouts + run.together.checkouts
            problems = audited(store) + [f"truth: {p}" for p in cashiers.violations()]
            positions = len(run.alone.positions | run.together.positions)
            if positions != checkouts:
                problems.append(f"{checkouts} checkouts took {positions} positions")
            problems += [f"payments: {p}" for p in paid.problems(cashiers.gross(), checkouts)]
            run.payments = paid.summary()
            run.status, run.detail = judged(problems)
    finally:
        store.close()
    return run


def slow_terminal(context: Context) -> CaseResult:
    """Case 6c: ``repeats`` runs, the order of the phases alternating; the run of median
    ratio is reported (every run's ratio in the notes); a run that is wrong or stalls fails
    the case."""
    sizes = context.sizes
    many, per_till = sizes.terminal_tills, sizes.terminal_checkouts_per_till
    case = f"6c {many} tills, {TERMINAL_LATENCY * 1000:.0f} ms card terminal"
    target = f"≥ {RATIO_TARGET:g}× 1 till"
    runs: list[TerminalRun] = []
    for repeat in range(context.repeats):
        context.progress(
            f"{case}: 1 and {many} tills, {per_till} checkouts each, "
            f"run {repeat + 1}/{context.repeats}"
        )
        with scratch(context.directory) as path:
            run = asyncio.run(
                run_against_terminal(path, many, per_till, together_first=repeat % 2 == 1)
            )
        runs.append(run)
        if run.status != "ok":
            break
    failed = next((run for run in runs if run.status != "ok"), None)
    if failed is not None:
        figure = f"{failed.status.upper()} (not timed)"
        notes = f"run {len(runs)} of {context.repeats}: {failed.detail}"
        return CaseResult(case, figure, "—", None, target, False, notes)
    run = sorted(runs, key=lambda each: each.ratio)[len(runs) // 2]
    alone, together = run.alone, run.together
    return CaseResult(
        case=case,
        tillflow=(
            f"{rate(together.rate, ' checkouts/s')}, p50 "
            f"{percentile(together.latencies, 0.5):.0f} ms, p99 "
            f"{percentile(together.latencies, 0.99):.0f} ms"
        ),
        reference=f"1 till {rate(alone.rate, ' checkouts/s')}",
        ratio=run.ratio,
        target=target,
        passed=run.ratio >= RATIO_TARGET,
        notes=(
            f"ideal {many}×; median of {len(runs)} runs by ratio (each run's: "
            f"{' / '.join(f'{each.ratio:.1f}×' for each in runs)}); that run, send → receipt "
            f"p50 / p99 / max: {many} tills {summary(together.latencies)}, 1 till "
            f"{summary(alone.latencies)}; {together.checkouts:,} + {alone.checkouts:,} "
            f"checkouts by card ({run.payments}), all verified: recorded once each, the "
            f"terminal charged exactly the card tenders"
        ),
        data={
            "ratios": [each.ratio for each in runs],
            "rates": [[each.alone.rate, each.together.rate] for each in runs],
            "latencies_ms": {
                "together": {
                    "p50": percentile(together.latencies, 0.5),
                    "p99": percentile(together.latencies, 0.99),
                },
                "alone": {
                    "p50": percentile(alone.latencies, 0.5),
                    "p99": percentile(alone.latencies, 0.99),
                },
            },
        },
    )
