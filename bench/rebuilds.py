"""A blue/green rebuild of the report against the live pipeline, in the same run (case 21
of ``python -m bench``, ``--only rebuilds``; alone: ``python -m bench.rebuilds``).

Each repeat rings up a backlog of checkouts on a fresh SQLite file with no processor
running, then times the live pipeline — a runtime of the shop's processors (Inventory, the
report behind it, the cash-up, receipt numbers) — draining that log from the start: the
positions of the log per second. Then ``tillflow rebuild reporting``'s engine builds version
2 of the report over the same log: positions per second again. The rebuilt report must equal
the truth. Target: the rebuild at ≥ 50 % of the live pipeline's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Final

from bench.cases import Context, Progress, scratch
from bench.report import CaseResult, rate
from bench.shop import Tills
from tillflow.engine import SqliteEventStore
from tillflow.engine.rebuild import Rebuild, RebuildOutcome
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.reporting.projection import reporting_processor

TARGET: Final = 0.5
"""The rebuild's rate over the live pipeline's."""
CHUNK: Final = 500


def one_repeat(path: Path, checkouts: int) -> tuple[float, RebuildOutcome, int]:
    """The live pipeline's positions/s, the rebuild, and the log's length."""
    with SqliteEventStore(path, durability="normal", registry=REGISTRY) as store:
        tills = Tills(store, seed=21)
        tills.seed()
        for start in range(0, checkouts, CHUNK):
            tills.checkout_many(min(CHUNK, checkouts - start))
        shop = Shop(store)

        async def drain() -> float:
            began = time.perf_counter()
            async with shop.runtime() as runtime:
                await runtime.drain(timeout=600)
            return time.perf_counter() - began

        seconds = asyncio.run(drain())
        head = store.head(0)
        outcome = Rebuild(store, reporting_processor(), "bench").run()
        report = shop.report.report()
        problems = tills.truth().violations(report.rows, report.totals)
        if report.version != outcome.version or problems:
            raise RuntimeError(f"the rebuilt report is wrong: {problems[:3]}")
        return head / seconds, outcome, head


def measure(
    directory: Path | None, checkouts: int, repeats: int, progress: Progress
) -> list[tuple[float, float, int]]:
    """Per repeat: (live positions/s, rebuild positions/s, log length)."""
    figures = []
    for repeat in range(repeats):
        progress(f"rebuilds: {checkouts:,} checkouts, run {repeat + 1}/{repeats}")
        with scratch(directory) as path:
            live, outcome, head = one_repeat(path, checkouts)
        figures.append((live, outcome.rate, head))
    return figures


def rebuild_rate(context: Context) -> CaseResult:
    checkouts = max(1_000, context.sizes.shop_checkouts // 10)
    figures = measure(context.directory, checkouts, context.repeats, context.progress)
    live = statistics.median(figure[0] for figure in figures)
    rebuilt = statistics.median(figure[1] for figure in figures)
    ratio = rebuilt / live if live else 0.0
    return CaseResult(
        case="rebuild of the report",
        tillflow=rate(rebuilt, " events/s"),
        reference=rate(live, " events/s"),
        ratio=ratio,
        target=f"≥ {TARGET:.0%} of the live pipeline",
        passed=ratio >= TARGET,
        notes=f"{checkouts:,} checkouts, a log of {figures[0][2]:,} positions; reference: "
        "the shop's runtime draining the same log from the start (Inventory, report, "
        "cash-up, receipts); tillflow: `tillflow rebuild reporting` over it (medians)",
        data={"checkouts": checkouts, "runs": figures},
    )


REBUILD_CASES: Final = (rebuild_rate,)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuilds", description=__doc__)
    parser.add_argument("--checkouts", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    for live, rebuilt, head in measure(None, arguments.checkouts, arguments.repeats, print):
        print(
            f"log {head:,} positions: live pipeline {live:,.0f}/s, rebuild {rebuilt:,.0f}/s "
            f"({rebuilt / live:.0%}; target ≥ {TARGET:.0%})"
        )


if __name__ == "__main__":
    main()
