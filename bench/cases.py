"""The engine's four cases: each runs tillflow and its reference in the same run, ``repeats``
times (alternating which goes first), and turns the medians into a :class:`CaseResult`.
The sizes and the context are shared with the shop cases (:mod:`bench.shop_cases`)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from bench import engine, limits, raw
from bench.report import CaseResult, Grid, mib, rate

APPEND_RATIO_TARGET: Final = 0.5
GROUP_COMMIT_TARGET: Final = 4.0
CHAIN_TARGET: Final = 100_000.0
FLAT_RATE: Final = 0.8
"""Cost per checkout is flat when the later (or larger) run goes at ≥ 0.8× the first's
rate..."""
FLAT_CPU: Final = 1.25
"""...and spends ≤ 1.25× its CPU per checkout."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """How much each case writes per repeat."""

    batches: int
    """Case 1: appends of ``batch_size`` events (and raw transactions of as many rows)."""
    batch_size: int
    writers: int
    """Case 2: concurrent asyncio writers..."""
    appends_per_writer: int
    """...each awaiting this many one-event appends."""
    single_commits: int
    """Case 2's reference: one-row transactions."""
    chain_events: int
    """Case 3: events through the chain per repeat."""
    memory_events: int
    """Case 4: the log the chain grows to (one run; see :data:`QUICK`)."""
    shop_checkouts: int
    """Case 5: checkouts through the shop per run."""
    shop_latency_rate: float
    """Case 6: checkouts per second, open loop..."""
    shop_latency_seconds: float
    """...for this long."""
    shop_memory_checkouts: int
    """Cases 7 and 8: checkouts of the one long run..."""
    shop_segments: int
    """...timed in this many segments."""
    contender_checkouts: int
    """Cases 9–10: checkouts per run of tillflow and of the bare loops..."""
    peer_checkouts: int
    """...of the ``eventsourcing`` library in memory (POPO)..."""
    peer_sqlite_checkouts: int
    """...and on SQLite (it runs ~100× slower)."""
    contender_latency_seconds: float
    """Cases 9–10: an open-loop phase this long after each throughput run..."""
    latency_repeats: int
    """...in the first this many repeats."""
    stall_seconds: float
    """A contender whose followers make no progress this long has stalled."""
    scaling: tuple[int, ...]
    """Case 11: tillflow runs of these many checkouts (one run each)..."""
    peer_scaling: tuple[int, ...]
    """...and the peer's (where it finishes in reasonable time)."""
    http_clients: int = 64
    """Case 12: concurrent keep-alive connections of the closed loop over HTTP..."""
    http_seconds: float = 5.0
    """...for this long; case 13: the open loop over HTTP..."""
    http_latency_seconds: float = 10.0
    """...for this long."""
    store_footprint_checkouts: tuple[int, int] = (30_000, 60_000)
    """Case 15: the memory store's heap growth between these checkouts (the first past
    its hot window of recent events)."""
    postgres_shop_checkouts: int = 30_000
    """Case 17: checkouts per run of the shop on PostgreSQL..."""
    postgres_peer_checkouts: int = 600
    """...and of the ``eventsourcing`` library on PostgreSQL (~50/s)."""
    failover_kills: int = 20
    """Case 18: SIGKILLs of a worker holding lanes..."""
    failover_handovers: int = 10
    """...and SIGTERM hand-overs."""
    shop_payments_seconds: float = 20.0
    """Case 6b: case 6's open loop with payments, at its rate, for this long."""
    terminal_tills: int = 64
    """Case 6c: concurrent tills paying by card through a slow terminal..."""
    terminal_checkouts_per_till: int = 25
    """...each ringing up this many checkouts (and one till alone as many)."""

    def scaled(self, factor: float) -> Sizes:
        """Every count times ``factor`` (at least 1); batch size, writers, the latency
        case's rate, the number of segments and of tills against the terminal unchanged."""

        def scale(count: int) -> int:
            return max(1, round(count * factor))

        return replace(
            self,
            batches=scale(self.batches),
            appends_per_writer=scale(self.appends_per_writer),
            single_commits=scale(self.single_commits),
            chain_events=scale(self.chain_events),
            memory_events=max(2, scale(self.memory_events)),
            shop_checkouts=scale(self.shop_checkouts),
            shop_latency_seconds=self.shop_latency_seconds * factor,
            shop_memory_checkouts=max(self.shop_segments, scale(self.shop_memory_checkouts)),
            contender_checkouts=scale(self.contender_checkouts),
            peer_checkouts=scale(self.peer_checkouts),
            peer_sqlite_checkouts=scale(self.peer_sqlite_checkouts),
            contender_latency_seconds=self.contender_latency_seconds * factor,
            scaling=tuple(scale(count) for count in self.scaling),
            peer_scaling=tuple(scale(count) for count in self.peer_scaling),
            http_seconds=self.http_seconds * factor,
            http_latency_seconds=self.http_latency_seconds * factor,
            store_footprint_checkouts=(
                scale(self.store_footprint_checkouts[0]),
                scale(self.store_footprint_checkouts[1]),
            ),
            postgres_shop_checkouts=scale(self.postgres_shop_checkouts),
            postgres_peer_checkouts=scale(self.postgres_peer_checkouts),
            failover_kills=scale(self.failover_kills),
            failover_handovers=scale(self.failover_handovers),
            shop_payments_seconds=self.shop_payments_seconds * factor,
            terminal_checkouts_per_till=scale(self.terminal_checkouts_per_till),
        )


FULL: Final = Sizes(
    batches=100,
    batch_size=1000,
    writers=64,
    appends_per_writer=250,
    single_commits=2_000,
    chain_events=300_000,
    memory_events=3_000_000,
    shop_checkouts=200_000,
    shop_latency_rate=1_000.0,
    shop_latency_seconds=20.0,
    shop_memory_checkouts=1_000_000,
    shop_segments=10,
    contender_checkouts=100_000,
    peer_checkouts=5_000,
    peer_sqlite_checkouts=2_000,
    contender_latency_seconds=5.0,
    latency_repeats=1_000,
    stall_seconds=10.0,
    scaling=(10_000, 100_000, 1_000_000),
    peer_scaling=(10_000,),
)
QUICK: Final = Sizes(
    batches=20,
    batch_size=1000,
    writers=64,
    appends_per_writer=40,
    single_commits=300,
    chain_events=30_000,
    memory_events=1_000_000,
    shop_checkouts=10_000,
    shop_latency_rate=1_000.0,
    shop_latency_seconds=2.0,
    shop_memory_checkouts=50_000,
    shop_segments=10,
    contender_checkouts=5_000,
    peer_checkouts=150,
    peer_sqlite_checkouts=60,
    contender_latency_seconds=0.3,
    latency_repeats=1,
    stall_seconds=5.0,
    scaling=(2_000, 10_000),
    peer_scaling=(),
    http_seconds=2.0,
    http_latency_seconds=2.0,
    store_footprint_checkouts=(20_000, 26_000),
    postgres_shop_checkouts=5_000,
    postgres_peer_checkouts=40,
    failover_kills=3,
    failover_handovers=2,
    shop_payments_seconds=1.0,
    terminal_checkouts_per_till=5,
)
"""The memory case needs about a million events even here: the store's SQLite page cache
(64 MiB per connection) keeps growing with the database until ~400k events, which a shorter
run would show as per-event growth. The shop's and the contenders' sizes are small enough
for every group together to finish in about a minute: a smoke test, not a measurement."""


@contextmanager
def scratch(directory: Path | None) -> Iterator[Path]:
    """A database path in a fresh temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tillflow-bench-", dir=directory) as name:
        yield Path(name) / "bench.db"


def _sides(repeat: int) -> tuple[str, str]:
    return ("reference", "tillflow") if repeat % 2 == 0 else ("tillflow", "reference")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class Context:
    sizes: Sizes
    repeats: int
    directory: Path | None
    progress: Progress
    raw_batched: float = 0.0
    """Case 1's reference (median rows/s), reused by cases 3 and 5."""
    tables: dict[str, Grid] = field(default_factory=dict)
    """Tables besides the cases' (the contenders', the scaling), by name."""
    tables_data: dict[str, Any] = field(default_factory=dict)
    """Their raw figures, for the JSON."""


def batched_appends(context: Context) -> CaseResult:
    sizes = context.sizes
    ours: list[float] = []
    theirs: list[float] = []
    for repeat in range(context.repeats):
        context.progress(f"batched appends, run {repeat + 1}/{context.repeats}")
        for side in _sides(repeat):
            with scratch(context.directory) as path:
                if side == "tillflow":
                    ours.append(engine.batched_append_rate(path, sizes.batches, sizes.batch_size))
                else:
                    theirs.append(raw.batched_insert_rate(path, sizes.batches, sizes.batch_size))
    context.raw_batched = _median(theirs)
    ratio = _median(ours) / context.raw_batched
    return CaseResult(
        case=f"1 batched appends ×{sizes.batch_size}",
        tillflow=rate(_median(ours), " ev/s"),
        reference=f"executemany {rate(context.raw_batched, ' rows/s')}",
        ratio=ratio,
        target=f"≥ {APPEND_RATIO_TARGET}×",
        passed=ratio >= APPEND_RATIO_TARGET,
        notes=f"{sizes.batches} appends of {sizes.batch_size} events per run",
        data={"tillflow_rates": ours, "reference_rates": theirs},
    )


def group_commit(context: Context) -> CaseResult:
    sizes = context.sizes
    runs: list[engine.GroupCommitRun] = []
    theirs: list[float] = []
    for repeat in range(context.repeats):
        context.progress(f"group commit, run {repeat + 1}/{context.repeats}")
        for side in _sides(repeat):
            with scratch(context.directory) as path:
                if side == "tillflow":
                    runs.append(
                        asyncio.run(
                            engine.group_commit(path, sizes.writers, sizes.appends_per_writer)
                        )
                    )
                else:
                    theirs.append(raw.one_per_commit_rate(path, sizes.single_commits))
    ours = _median([run.rate for run in runs])
    rows_per_commit = _median([run.rows_per_commit for run in runs])
    ratio = ours / _median(theirs)
    return CaseResult(
        case=f"2 group commit, {sizes.writers} writers",
        tillflow=rate(ours, " appends/s"),
        reference=f"1 row/commit {rate(_median(theirs), ' rows/s')}",
        ratio=ratio,
        target=f"≥ {GROUP_COMMIT_TARGET:g}×",
        passed=ratio >= GROUP_COMMIT_TARGET,
        notes=(
            f"{rows_per_commit:.1f} rows per commit; "
            f"{sizes.writers} × {sizes.appends_per_writer} one-event appends per run"
        ),
        data={
            "tillflow_rates": [run.rate for run in runs],
            "rows_per_commit": [run.rows_per_commit for run in runs],
            "commits": [run.commits for run in runs],
            "reference_rates": theirs,
        },
    )


def chain(context: Context) -> CaseResult:
    sizes = context.sizes
    runs: list[engine.ChainRun] = []
    for repeat in range(context.repeats):
        context.progress(f"chain, run {repeat + 1}/{context.repeats}")
        with scratch(context.directory) as path:
            runs.append(asyncio.run(engine.run_chain(path, sizes.chain_events)))
    bad = [run for run in runs if run.status != "ok"]
    ours = _median([run.rate for run in runs])
    batches = {
        name: round(_median([float(run.batches.get(name, 0)) for run in runs]))
        for name in engine.CHAIN
    }
    notes = (
        f"{sizes.chain_events:,} events per run, all verified; "
        f"{' → '.join(f'{name} {count} txns' for name, count in batches.items())}"
    )
    figure = rate(ours, " ev/s")
    ratio = ours / context.raw_batched if context.raw_batched else None
    if bad:
        statuses = ", ".join(sorted({run.status for run in bad})).upper()
        figure, ratio = f"{statuses} (not timed)", None
        notes = f"{len(bad)} of {len(runs)} runs {statuses}: {bad[0].detail}"
    return CaseResult(
        case="3 chain of 3 with barriers",
        tillflow=figure,
        reference=f"executemany {rate(context.raw_batched, ' rows/s')}",
        ratio=ratio,
        target=f"≥ {rate(CHAIN_TARGET, ' ev/s')}",
        passed=not bad and ours >= CHAIN_TARGET,
        notes=notes,
        data={
            "rates": [run.rate for run in runs],
            "statuses": [run.status for run in runs],
            "details": [run.detail for run in runs],
            "transactions": [run.batches for run in runs],
        },
    )


def memory(context: Context) -> CaseResult:
    count = context.sizes.memory_events
    context.progress(f"memory, one run over {count:,} events")
    with scratch(context.directory) as path:
        run = asyncio.run(limits.memory_flat(path, count))
    target = f"anon ≤ +{limits.GROWTH_LIMIT // limits.MIB} MiB, 2nd half"
    data = {
        "events": count,
        "status": run.chain.status,
        "detail": run.chain.detail,
        "rate": run.chain.rate,
        "samples": [asdict(sample) for sample in run.samples],
    }
    if run.chain.status != "ok":
        return CaseResult(
            case=f"4 memory flat, {count:,} events",
            tillflow=f"{run.chain.status.upper()} (not measured)",
            reference="RSS at start",
            ratio=None,
            target=target,
            passed=False,
            notes=run.chain.detail,
            data=data,
        )
    start, middle, end = run.start, run.middle, run.end
    return CaseResult(
        case=f"4 memory flat, {count:,} events",
        tillflow=f"RSS {mib(start.rss)} → {mib(middle.rss)} → {mib(end.rss)}",
        reference=f"start {mib(start.rss)}",
        ratio=end.rss / start.rss,
        target=target,
        passed=run.passed,
        notes=(
            f"start → middle → end; anonymous {mib(start.anonymous)} → "
            f"{mib(middle.anonymous)} → {mib(end.anonymous)}, "
            f"{run.growth / limits.MIB:+.1f} MiB ({run.bytes_per_event:.0f} B/event) in the "
            f"2nd half; chain {rate(run.chain.rate, ' ev/s')}, verified; 1 run"
        ),
        data=data,
    )


CASES: Final = (batched_appends, group_commit, chain, memory)
