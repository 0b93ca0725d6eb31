"""Cases 14–15 (``python -m bench --only stores``): the memory store against SQLite with the
whole shop in one process, and what the memory store holds per event.

::

    case                               what is measured                           target
    14 memory store vs SQLite          the shop in one process (tills in a        ≥ 2× SQLite's
                                       thread) on each store, each run a fresh    rate, same run
                                       process, the two alternating; rates and
                                       the ratio of each pair of runs
    15 memory store, bytes per event   traced heap growth (tracemalloc) of the    ≤ 300 B/event
                                       shop on the memory store ÷ events it
                                       recorded, between two points past the
                                       store's hot window

Case 14 runs :func:`bench.contenders.run_isolated` (the contenders' ``tillflow-memory`` and
``tillflow-sqlite-1``), so every run is verified against the truth as theirs are. Case 15
is untimed (tracemalloc slows everything down): the growth between the two points is the
store's steady cost per event (its packed blocks and indexes; the hot window of recent
events as objects is full by the first point and stays that size), plus anything else of
the shop that grows, which counts against the store.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import statistics
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

from bench.cases import Context
from bench.contenders import Outcome, Spec, run_isolated
from bench.report import CaseResult, mib, rate

RATIO_TARGET: Final = 2.0
BYTES_TARGET: Final = 300
MEMORY, SQLITE = "tillflow-memory", "tillflow-sqlite-1"


def _spec(key: str, context: Context) -> Spec:
    directory = None if context.directory is None else str(context.directory)
    return Spec(key=key, checkouts=context.sizes.contender_checkouts, directory=directory)


def memory_vs_sqlite(context: Context) -> CaseResult:
    """Case 14: ``repeats`` pairs of runs, which store goes first alternating."""
    runs: dict[str, list[Outcome]] = {MEMORY: [], SQLITE: []}
    for repeat in range(context.repeats):
        order = (MEMORY, SQLITE) if repeat % 2 == 0 else (SQLITE, MEMORY)
        for key in order:
            context.progress(f"memory vs SQLite, run {repeat + 1}/{context.repeats}: {key}")
            runs[key].append(run_isolated(_spec(key, context), context.progress))
    case, target = "14 memory store vs SQLite, 1 process", f"≥ {RATIO_TARGET:g}× SQLite"
    bad = [run for done in runs.values() for run in done if run.status != "ok"]
    data: dict[str, Any] = {key: [run.summary() for run in done] for key, done in runs.items()}
    if bad:
        detail = f"{bad[0].key} {bad[0].status}: {bad[0].detail}"
        return CaseResult(case, "NOT TIMED", "—", None, target, False, detail, data)
    memory = statistics.median(run.rate for run in runs[MEMORY])
    sqlite = statistics.median(run.rate for run in runs[SQLITE])
    pairs = [
        ours.rate / theirs.rate for ours, theirs in zip(runs[MEMORY], runs[SQLITE], strict=True)
    ]
    cpu = {
        key: statistics.median(run.cpu_per_checkout for run in done) for key, done in runs.items()
    }
    rss = {key: max(run.peak_rss for run in done) for key, done in runs.items()}
    data["pair_ratios"] = pairs
    return CaseResult(
        case=case,
        tillflow=rate(memory, " checkouts/s"),
        reference=f"SQLite {rate(sqlite, ' checkouts/s')}",
        ratio=memory / sqlite,
        target=target,
        passed=memory >= RATIO_TARGET * sqlite,
        notes=(
            f"the whole shop, tills in a thread, {context.sizes.contender_checkouts:,} checkouts "
            f"per run, every run verified; median rates; each pair's ratio "
            f"{' / '.join(f'{pair:.2f}' for pair in pairs)}; CPU µs/checkout: memory "
            f"{cpu[MEMORY]:.1f}, SQLite {cpu[SQLITE]:.1f}; peak RSS memory {mib(rss[MEMORY])}, "
            f"SQLite {mib(rss[SQLITE])}"
        ),
        data=data,
    )


async def _grow(checkouts: int, mark: int) -> dict[str, float]:
    # imported here: the child process loads the shop, the parent never needs it
    from bench.shop import Tills, _settle_seeding  # noqa: PLC0415
    from tillflow.engine import MemoryEventStore  # noqa: PLC0415
    from tillflow.shop.assembly import REGISTRY  # noqa: PLC0415

    store = MemoryEventStore(registry=REGISTRY)
    tills = Tills(store, seed=1)
    points: list[tuple[int, int]] = []
    tracemalloc.start()
    async with tills.shop.runtime() as runtime:
        await _settle_seeding(runtime, await asyncio.to_thread(tills.seed))
        done = 0
        while done < checkouts:
            batch = min(2_000, checkouts - done)
            await asyncio.to_thread(tills.checkout_many, batch)
            done += batch
            await runtime.drain(timeout=120.0)
            if done in (mark, checkouts):
                store.settle()
                gc.collect()
                points.append((store.head(0), tracemalloc.get_traced_memory()[0]))
    tracemalloc.stop()
    (first_events, first_bytes), (last_events, last_bytes) = points
    return {
        "events": last_events,
        "events_per_checkout": last_events / checkouts,
        "overall": last_bytes / last_events,
        "marginal": (last_bytes - first_bytes) / (last_events - first_events),
        "mark_events": first_events,
    }


def _footprint(checkouts: int, mark: int) -> dict[str, float]:
    return asyncio.run(_grow(checkouts, mark))


def bytes_per_event(context: Context) -> CaseResult:
    """Case 15: one run in a fresh process."""
    mark, checkouts = context.sizes.store_footprint_checkouts
    context.progress(f"memory store bytes per event: {checkouts:,} checkouts under tracemalloc")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        found = pool.submit(_footprint, checkouts, mark).result()
    marginal = found["marginal"]
    return CaseResult(
        case="15 memory store, bytes per event",
        tillflow=f"{marginal:,.0f} B/event",
        reference=f"{found['overall']:,.0f} B/event overall",
        ratio=marginal / BYTES_TARGET,
        target=f"≤ {BYTES_TARGET} B/event",
        passed=marginal <= BYTES_TARGET,
        notes=(
            f"traced heap growth of the shop on the memory store from checkout {mark:,} "
            f"({found['mark_events']:,.0f} events) to {checkouts:,} ({found['events']:,.0f} "
            f"events, {found['events_per_checkout']:.2f} per checkout) ÷ the events recorded "
            f"in between; overall: everything traced ÷ every event (the hot window of recent "
            f"events as objects included); 1 run"
        ),
        data=found,
    )


STORE_CASES: Final = (memory_vs_sqlite, bytes_per_event)
