"""The shop cases (``python -m bench --only shop``): the whole shop on SQLite, durable.

::

    case                        what is timed                                target
    5 shop throughput           first append → report reflects the last      ≥ 20,000 checkouts/s
                                checkout; tills in a thread (1 process), in
                                a 2nd OS process (2 processes), and the
                                report's processor in a 3rd, started as
                                ``tillflow worker --run reporting``
    6 latency, open loop        scheduled send → report reflects it,         p99 ≤ 20 ms
                                1,000 checkouts/s
    6b latency with payments    case 6 with cash (change), card and split    p99 ≤ 20 ms
                                tenders, cards through a terminal answering
                                at once (:mod:`bench.paying`)
    6c 64 tills, slow terminal  checkouts/s of 64 tills paying by card       ≥ 32× 1 till
                                through a 200 ms terminal against 1 till's
                                (:mod:`bench.slow_terminal`); send → receipt
    7 memory                    shop process RSS after 1M checkouts          ≤ 200 MiB
    8 flat cost                 checkouts/s and CPU per checkout per 100k    ≥ 0.8× rate,
                                segment, late segments vs early ones          ≤ 1.25× CPU

Each run is verified (consistent-cut audit and the truth; see :mod:`bench.shop`; with
payments also the money: tenders against the totals, the terminal's charges against the card
tenders, one authorization per card checkout): a run that stalls, fails or is wrong shows as
such, untimed, and fails its case. The throughput ratio is the log's events per second end to
end (checkouts and Inventory's effects) over the plain-SQLite batched insert rate measured in
the same run (case 1's, or measured here when the engine cases were not run).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Final

from bench import raw
from bench.cases import FLAT_CPU, FLAT_RATE, Context, _median, scratch
from bench.report import CaseResult, mib, rate
from bench.shop import (
    INVENTORY,
    REPORTING,
    LatencyRun,
    Segment,
    ShopRun,
    percentile,
    run_latency,
    run_shop,
    run_shop_in_fresh_process,
    summary,
)
from bench.slow_terminal import slow_terminal

THROUGHPUT_TARGET: Final = 20_000.0
LATENCY_TARGET_MS: Final = 20.0
MEMORY_TARGET: Final = 200 * 1024 * 1024


def raw_reference(context: Context) -> float:
    """Case 1's plain-SQLite rate, or measure it now (same sizes, median of the repeats)."""
    if not context.raw_batched:
        sizes = context.sizes
        rates = []
        for repeat in range(context.repeats):
            context.progress(f"raw SQLite reference, run {repeat + 1}/{context.repeats}")
            with scratch(context.directory) as path:
                rates.append(raw.batched_insert_rate(path, sizes.batches, sizes.batch_size))
        context.raw_batched = _median(rates)
    return context.raw_batched


def transactions_summary(run: ShopRun) -> str:
    batches = {name: values.get("batches", 0) for name, values in run.processors.items()}
    tills = run.tills_transactions
    if run.tills == "one process":  # one store, one writer: its transactions are everyone's
        tills_part = f"writer {run.writer.get('batches', 0)} txns in all"
    else:
        tills_part = f"tills {tills} txns ({run.checkouts / max(tills, 1):,.0f} checkouts/txn)"
    return (
        f"{tills_part}, inventory {batches.get(INVENTORY, 0)} txns, "
        f"reporting {batches.get(REPORTING, 0)} txns"
    )


def cpu_summary(run: ShopRun) -> str:
    """CPU per checkout by process and thread (unlike a rate, not hurt by others' load)."""
    parts = []
    for process, roles in run.cpu_per_checkout().items():
        threads = ", ".join(
            f"{name} {micros:.0f}"
            for name, micros in sorted(roles.items(), key=lambda item: -item[1])
            if name != "all" and micros >= 1
        )
        parts.append(f"{process} {roles.get('all', 0):.0f} ({threads})")
    return "CPU µs/checkout: " + "; ".join(parts)


def _failed(runs: list[ShopRun]) -> str | None:
    bad = [run for run in runs if run.status != "ok"]
    if not bad:
        return None
    statuses = ", ".join(sorted({run.status for run in bad})).upper()
    return f"{len(bad)} of {len(runs)} runs {statuses}: {bad[0].detail}"


PLACEMENTS: Final = {  # name: (where things run, tills apart, report apart)
    "1 process": ("tills in a thread", False, False),
    "2 processes": ("tills in a 2nd process", True, False),
    "3 processes": ("tills in a 2nd process, the report in a 3rd (tillflow worker)", True, True),
}


def throughput(context: Context) -> list[CaseResult]:
    """Case 5: every placement, the order rotating with each repeat."""
    count = context.sizes.shop_checkouts
    reference = raw_reference(context)
    runs: dict[str, list[ShopRun]] = {placement: [] for placement in PLACEMENTS}
    names = list(PLACEMENTS)
    for repeat in range(context.repeats):
        turn = repeat % len(names)
        for placement in names[turn:] + names[:turn]:
            context.progress(f"shop throughput ({placement}), run {repeat + 1}/{context.repeats}")
            with scratch(context.directory) as path:
                _, separate, apart = PLACEMENTS[placement]
                shop = run_shop(path, count, separate=separate, reporting_apart=apart)
                runs[placement].append(asyncio.run(shop))
    results = []
    for placement, done in runs.items():
        where = PLACEMENTS[placement][0]
        checkouts = _median([run.rate for run in done])
        events = _median([run.events / run.seconds for run in done if run.seconds])
        problem = _failed(done)
        middle = sorted(done, key=lambda run: run.rate)[len(done) // 2]
        figure = rate(checkouts, " checkouts/s")
        ratio: float | None = events / reference if reference else None
        notes = (
            f"{count:,} checkouts per run (1–5 lines), all verified; {rate(events, ' ev/s')} "
            f"end to end; median run: {transactions_summary(middle)}; {cpu_summary(middle)}"
        )
        if problem is not None:
            figure, ratio, notes = "NOT TIMED", None, problem
        results.append(
            CaseResult(
                case=f"5 shop, {placement}",
                tillflow=figure,
                reference=f"executemany {rate(reference, ' rows/s')}",
                ratio=ratio,
                target=f"≥ {rate(THROUGHPUT_TARGET, ' checkouts/s')}",
                passed=problem is None and checkouts >= THROUGHPUT_TARGET,
                notes=f"{where}; {notes}",
                data={
                    "rates": [run.rate for run in done],
                    "events_per_second": [run.events / max(run.seconds, 1e-9) for run in done],
                    "statuses": [run.status for run in done],
                    "details": [run.detail for run in done],
                    "processors": [run.processors for run in done],
                    "writer": [run.writer for run in done],
                    "tills_transactions": [run.tills_transactions for run in done],
                    "append_seconds": [
                        sum(segment.tills.append_seconds for segment in run.segments)
                        for run in done
                    ],
                    "seconds": [run.seconds for run in done],
                    "cpu_us_per_checkout": [run.cpu_per_checkout() for run in done],
                },
            )
        )
    return results


def _latency_data(run: LatencyRun) -> dict[str, object]:
    def quantiles(values: list[float]) -> dict[str, float]:
        return {
            "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9),
            "p99": percentile(values, 0.99),
            "max": max(values, default=math.nan),
        }

    return {
        "status": run.status,
        "detail": run.detail,
        "checkouts": run.checkouts,
        "rate": run.rate,
        "append_ms": quantiles(run.append),
        "inventory_ms": quantiles(run.inventory),
        "report_ms": quantiles(run.report),
        "late_send_ms": run.late_send,
        "payments": run.payments,
        "processors": run.processors,
        "writer": run.writer,
    }


def latency(context: Context) -> CaseResult:
    """Case 6: ``repeats`` open-loop runs; the run of median p99 is reported (every run's
    p99 in the notes), and a run that is wrong or stalls fails the case."""
    sizes = context.sizes
    case = f"6 latency, {sizes.shop_latency_rate:,.0f}/s open loop"
    return _latency_case(context, case, sizes.shop_latency_seconds)


def latency_with_payments(context: Context) -> CaseResult:
    """Case 6b: case 6 with the checkouts paying by cash (with change), card or both
    (:mod:`bench.paying`) through a :class:`SimulatedTerminal` answering at once, so that
    what is timed is the shop's own work for a paid checkout (the card's authorization, the
    tenders recorded and the report's takings by tender), not a terminal's delay."""
    sizes = context.sizes
    case = f"6b latency with payments, {sizes.shop_latency_rate:,.0f}/s open loop"
    return _latency_case(context, case, sizes.shop_payments_seconds, payments=True)


def _latency_case(
    context: Context, case: str, seconds: float, *, payments: bool = False
) -> CaseResult:
    sizes = context.sizes
    runs: list[LatencyRun] = []
    for repeat in range(context.repeats):
        context.progress(f"{case} for {seconds:g}s, run {repeat + 1}/{context.repeats}")
        with scratch(context.directory) as path:
            run = asyncio.run(
                run_latency(path, sizes.shop_latency_rate, seconds, payments=payments)
            )
        runs.append(run)
        if run.status != "ok":
            break
    target = f"p99 ≤ {LATENCY_TARGET_MS:g} ms"
    failed = next((run for run in runs if run.status != "ok"), None)
    if failed is not None:
        return CaseResult(
            case=case,
            tillflow=f"{failed.status.upper()} (not timed)",
            reference="—",
            ratio=None,
            target=target,
            passed=False,
            notes=f"run {len(runs)} of {context.repeats}: {failed.detail}",
            data=_latency_data(failed),
        )
    p99s = [percentile(run.report, 0.99) for run in runs]
    run = sorted(runs, key=lambda each: percentile(each.report, 0.99))[len(runs) // 2]
    p50, p99 = percentile(run.report, 0.5), percentile(run.report, 0.99)
    batches = {name: values.get("batches", 0) for name, values in run.processors.items()}
    paid = f" ({run.payments})" if run.payments else ""
    return CaseResult(
        case=case,
        tillflow=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        reference="—",
        ratio=None,
        target=target,
        passed=p99 <= LATENCY_TARGET_MS,
        notes=(
            f"median of {len(runs)} runs by p99 (each run's p99: "
            f"{' / '.join(f'{value:.1f}' for value in p99s)} ms); that run, from the scheduled "
            f"send, p50 / p99 / max: receipt {summary(run.append)}, inventory passed "
            f"{summary(run.inventory)}, report {summary(run.report)}; {run.checkouts:,} "
            f"checkouts{paid}, all verified; sends at most {run.late_send:.1f} ms late; "
            f"{run.writer.get('batches', 0)} writer txns, inventory "
            f"{batches.get(INVENTORY, 0)}, reporting {batches.get(REPORTING, 0)}"
        ),
        data={**_latency_data(run), "p99_ms_per_run": p99s},
    )


@dataclass(frozen=True)
class Span:
    """Consecutive segments of a run, pooled."""

    name: str
    checkouts: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_checkout(self) -> float:
        return self.cpu / self.checkouts * 1e6 if self.checkouts else 0.0


def _span(name: str, segments: list[Segment]) -> Span:
    return Span(
        name,
        sum(segment.tills.checkouts for segment in segments),
        sum(segment.seconds for segment in segments),
        sum(segment.cpu for segment in segments),
    )


def early_and_late(segments: list[Segment]) -> tuple[Span, Span]:
    """The 2nd and 3rd segments against the two before the last. The first segment holds
    the pipeline's filling (the tills run ahead of the report, so it is charged for work
    of the next) and the last its draining (charged for less): comparing those two would
    flatter the later one. With fewer than 6 segments, the first against the last."""
    if len(segments) < 6:
        return _span("first", segments[:1]), _span("last", segments[-1:])
    count = len(segments)
    return (
        _span("segments 2-3", segments[1:3]),
        _span(f"segments {count - 2}-{count - 1}", segments[-3:-1]),
    )


def memory_and_flat(context: Context) -> list[CaseResult]:
    """Cases 7 and 8: one long run, tills in a 2nd process, timed in segments."""
    sizes = context.sizes
    count, segments = sizes.shop_memory_checkouts, sizes.shop_segments
    context.progress(f"shop memory, one run of {count:,} checkouts in {segments} segments")
    with scratch(context.directory) as path:
        run = run_shop_in_fresh_process(path, count, separate=True, segments=segments)
    data = {
        "status": run.status,
        "detail": run.detail,
        "checkouts": count,
        "start_rss": run.start_memory.rss if run.start_memory else None,
        "segments": [
            {
                "checkouts": segment.tills.checkouts,
                "seconds": segment.seconds,
                "rate": segment.rate,
                "append_seconds": segment.tills.append_seconds,
                "held_seconds": segment.tills.held_seconds,
                "tills_transactions": segment.tills.transactions,
                "rss": segment.memory.rss,
                "anonymous": segment.memory.anonymous,
                "cpu_us_per_checkout": segment.cpu_per_checkout,
            }
            for segment in run.segments
        ],
        "processors": run.processors,
        "writer": run.writer,
        "tills_rss": run.tills_rss,
        "cpu_us_per_checkout": run.cpu_per_checkout(),
    }
    size = f"{count:,} checkouts"
    segment_size = f"{-(-count // segments):,}"
    if run.status != "ok" or not run.segments or run.start_memory is None:
        figure = f"{run.status.upper()} (not measured)"
        return [
            CaseResult(f"7 memory, {size}", figure, "—", None, "RSS ≤ 200 MiB", False, run.detail),
            CaseResult(
                f"8 flat cost per {segment_size}", figure, "—", None, "", False, run.detail, data
            ),
        ]
    start, end = run.start_memory, run.segments[-1].memory
    early, late = early_and_late(run.segments)
    rates = ", ".join(f"{segment.rate / 1000:.1f}k" for segment in run.segments)
    appends = ", ".join(
        f"{segment.tills.checkouts / segment.tills.append_seconds / 1000:.1f}k"
        for segment in run.segments
    )
    tills_rss = run.tills_rss
    memory = CaseResult(
        case=f"7 memory, {size}",
        tillflow=f"RSS {mib(end.rss)}",
        reference=f"start {mib(start.rss)}",
        ratio=end.rss / start.rss,
        target=f"RSS ≤ {mib(MEMORY_TARGET)}",
        passed=end.rss <= MEMORY_TARGET,
        notes=(
            f"the shop's process (inventory + reporting) once the report reflects every "
            f"checkout; anonymous {mib(start.anonymous)} → {mib(end.anonymous)}; RSS by "
            f"segment {', '.join(mib(segment.memory.rss) for segment in run.segments)}; "
            f"tills' process {mib(tills_rss)}; {rate(run.rate, ' checkouts/s')}, verified; 1 run"
        ),
        data=data,
    )
    ratio = late.rate / early.rate if early.rate else 0.0
    cpu_ratio = late.cpu_per_checkout / early.cpu_per_checkout if early.cpu else math.inf
    cpus = ", ".join(f"{segment.cpu_per_checkout:.0f}" for segment in run.segments)
    flat = CaseResult(
        case=f"8 flat cost per {segment_size}",
        tillflow=(
            f"{rate(early.rate)} → {rate(late.rate)}; CPU {early.cpu_per_checkout:.0f} → "
            f"{late.cpu_per_checkout:.0f} µs"
        ),
        reference=f"{early.name} {rate(early.rate, ' checkouts/s')}",
        ratio=ratio,
        target=f"{late.name} ≥ {FLAT_RATE:g}× the rate, ≤ {FLAT_CPU:g}× the CPU",
        passed=ratio >= FLAT_RATE and cpu_ratio <= FLAT_CPU,
        notes=(
            f"checkouts/s per segment, report side: {rates}; CPU µs per checkout per segment, "
            f"both processes: {cpus} ({late.name} {cpu_ratio:.2f}× {early.name}; the first "
            f"segment holds the pipeline's filling and the last its draining, so neither is "
            f"compared); tills' append rate: {appends}; {transactions_summary(run)}; "
            f"{cpu_summary(run)}; same run as 7"
        ),
        data=data,
    )
    return [memory, flat]


SHOP_CASES: Final = (throughput, latency, latency_with_payments, slow_terminal, memory_and_flat)
