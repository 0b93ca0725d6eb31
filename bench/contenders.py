"""Cases 9–11: the point-of-sale workload (:mod:`bench.pos`) through every contender, side
by side in one table, and tillflow's cost per checkout as the run grows.

Contenders (:data:`CONTENDERS`):

* tillflow — the whole shop (Sale → Inventory → the report behind its barrier) on the
  memory store and on SQLite (durability ``full``), with the tills in a thread and in a
  2nd process (:func:`bench.shop.run_shop`);
* the peer — the ``eventsourcing`` library's idiomatic system (:mod:`bench.peer`) on its
  POPO (in-memory) and SQLite persistence, under its ``SingleThreadedRunner``,
  ``MultiThreadedRunner`` and ``NewMultiThreadedRunner``;
* the machine's limits — a bare Python loop and a bare 3-stage asyncio pipeline doing the
  same bookkeeping (:mod:`bench.machine`), raw SQLite inserts batched and one per commit
  (:mod:`bench.raw`).

Every run happens in a fresh process (``spawn``), so its peak RSS is its own; the
contenders take turns within each repeat (the order reversed every other repeat), so a
slow moment of a shared machine does not land on one contender only. A run's final report
is checked against :func:`bench.pos.truth` (and tillflow's also against its own truth and
consistent-cut audit): a run that is wrong, stalls (no progress for ``stall_seconds``) or
outlives its deadline shows as such and is never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import resource
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

from bench import raw
from bench.cases import FLAT_CPU, FLAT_RATE, Context, Progress, Sizes
from bench.machine import asyncio_pipeline, bare_loop
from bench.pos import PosReport, truth, violations, workload
from bench.report import CaseResult, Cell, Column, Grid, mib, rate, ratio_text
from bench.shop import percentile, run_latency, run_shop
from tillflow.service.collector import tune_collector

LATENCY_RATE: Final = 1_000.0
"""Checkouts per second of the open-loop phases (issue 3's target rate); the peer's is
lower (half its own throughput) when it cannot sustain this."""
PEER_TARGET: Final = 100.0
ASYNCIO_TARGET: Final = 0.5
SCALING_SEGMENTS: Final = 10

Side = Literal["tillflow", "peer", "limit"]
Store = Literal["memory", "sqlite"]
PeerRunner = Literal["single", "multi", "new-multi"]


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    side: Side
    store: Store


CONTENDERS: Final = (
    Contender("tillflow-memory", "tillflow, memory store", "tillflow", "memory"),
    Contender("tillflow-sqlite-1", "tillflow, SQLite, tills in a thread", "tillflow", "sqlite"),
    Contender(
        "tillflow-sqlite-2", "tillflow, SQLite, tills in a 2nd process", "tillflow", "sqlite"
    ),
    Contender("es-popo-single", "eventsourcing, POPO, SingleThreadedRunner", "peer", "memory"),
    Contender("es-popo-multi", "eventsourcing, POPO, MultiThreadedRunner", "peer", "memory"),
    Contender("es-popo-new-multi", "eventsourcing, POPO, NewMultiThreadedRunner", "peer", "memory"),
    Contender("es-sqlite-single", "eventsourcing, SQLite, SingleThreadedRunner", "peer", "sqlite"),
    Contender("es-sqlite-multi", "eventsourcing, SQLite, MultiThreadedRunner", "peer", "sqlite"),
    Contender(
        "es-sqlite-new-multi", "eventsourcing, SQLite, NewMultiThreadedRunner", "peer", "sqlite"
    ),
    Contender("bare-loop", "bare Python loop (the bookkeeping only)", "limit", "memory"),
    Contender("asyncio", "bare asyncio pipeline, 3 stages", "limit", "memory"),
    Contender("sqlite-batched", "raw SQLite inserts, 1,000 rows per commit", "limit", "sqlite"),
    Contender("sqlite-single", "raw SQLite inserts, 1 row per commit", "limit", "sqlite"),
)
BY_KEY: Final = {contender.key: contender for contender in CONTENDERS}
PEER_SETUPS: Final[dict[str, tuple[Literal["popo", "sqlite"], PeerRunner]]] = {
    "es-popo-single": ("popo", "single"),
    "es-popo-multi": ("popo", "multi"),
    "es-popo-new-multi": ("popo", "new-multi"),
    "es-sqlite-single": ("sqlite", "single"),
    "es-sqlite-multi": ("sqlite", "multi"),
    "es-sqlite-new-multi": ("sqlite", "new-multi"),
}
"""The peer's contenders: persistence module and runner (:mod:`bench.peer`)."""


# -- one run, in a fresh process -----------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a fresh process is asked to run (picklable)."""

    key: str
    checkouts: int
    directory: str | None
    latency_rate: float = 0.0
    latency_seconds: float = 0.0
    stall_seconds: float = 10.0
    segments: int = 1
    batches: int = 0
    batch_size: int = 0
    single_commits: int = 0
    latency_only: bool = False
    """tillflow: only the open-loop run (its own fresh process, after the throughput run's,
    so that neither run's heap weighs on the other)."""

    @property
    def timeout(self) -> float:
        """The most a run may take before it is killed (a run as slow as 20 checkouts/s
        still finishes; a stall is caught long before by the run itself)."""
        return 120.0 + self.checkouts / 20 + 10 * self.latency_seconds + self.stall_seconds


@dataclass
class Outcome:
    """One run of one contender. Only an ``ok`` run's figures mean anything."""

    key: str
    status: str = "ok"
    detail: str = ""
    checkouts: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    issued: int = 0
    """Checkouts the report must reflect (the open-loop phase's included, when it shares
    the report)."""
    report: dict[str, Any] | None = None
    latency: list[float] = field(default_factory=list)
    """Milliseconds from scheduled send to the report reflecting the checkout."""
    latency_rate: float = 0.0
    rows_per_second: float = 0.0
    """Raw SQLite only: rows written per second."""
    events_per_checkout: float = 0.0
    segments: list[tuple[int, float]] = field(default_factory=list)
    """(checkouts, seconds) per segment (tillflow)."""
    peak_rss: int = 0
    tills_peak_rss: int = 0
    """Tills in a 2nd process: that process's peak."""

    @property
    def rate(self) -> float:
        """Checkouts per second. Raw SQLite, batched: rows per second ÷ events per checkout
        (a checkout's rows); one row per commit: commits per second (a checkout durable on
        its own commit, its few rows costing little beside the commit)."""
        if self.rows_per_second:
            if self.key == "sqlite-single":
                return self.rows_per_second
            return self.rows_per_second / self.events_per_checkout
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_checkout(self) -> float:
        """Microseconds of CPU (every thread and process of the contender)."""
        return self.cpu_seconds * 1e6 / self.checkouts if self.checkouts else math.nan

    def summary(self) -> dict[str, Any]:
        """The run for the JSON (latency as quantiles, not every sample)."""
        return {
            "status": self.status,
            "detail": self.detail,
            "checkouts": self.checkouts,
            "seconds": self.seconds,
            "rate": self.rate,
            "cpu_us_per_checkout": self.cpu_per_checkout,
            "latency_rate": self.latency_rate,
            "latency_ms": {
                name: percentile(self.latency, fraction)
                for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
            }
            if self.latency
            else None,
            "rows_per_second": self.rows_per_second or None,
            "segments": self.segments,
            "peak_rss": self.peak_rss,
            "tills_peak_rss": self.tills_peak_rss or None,
        }


@contextlib.contextmanager
def _scratch(directory: str | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tillflow-bench-", dir=directory) as name:
        yield Path(name)


def _cpu() -> float:
    return time.process_time()


def _tillflow(spec: Spec, progress: Progress) -> Outcome:
    if spec.latency_only:
        return _tillflow_latency(spec, progress)
    memory = spec.key == "tillflow-memory"
    separate = spec.key == "tillflow-sqlite-2"
    label = BY_KEY[spec.key].label

    def on_segment(done: int, total: int) -> None:
        progress(f"{label}: {done:,} of {total:,} checkouts in the report")

    with _scratch(spec.directory) as directory:
        run = asyncio.run(
            run_shop(
                directory / "bench.db",
                spec.checkouts,
                separate=separate,
                memory=memory,
                segments=spec.segments,
                on_segment=on_segment if spec.segments > 1 else None,
            )
        )
    outcome = Outcome(
        spec.key,
        run.status,
        run.detail,
        checkouts=run.checkouts,
        seconds=run.seconds,
        cpu_seconds=sum(roles.get("all", 0.0) for roles in run.cpu.values()),
        issued=spec.checkouts,
        report=run.report or None,
        segments=[(segment.tills.checkouts, segment.seconds) for segment in run.segments],
    )
    return outcome


def _tillflow_latency(spec: Spec, progress: Progress) -> Outcome:
    """The open-loop run (:func:`bench.shop.run_latency`, tills and shop in one process:
    receipts come back to the sender's event loop)."""
    label = BY_KEY[spec.key].label
    progress(f"{label}: open loop at {spec.latency_rate:,.0f}/s for {spec.latency_seconds:g}s")
    with _scratch(spec.directory) as directory:
        latency = asyncio.run(
            run_latency(
                directory / "latency.db",
                spec.latency_rate,
                spec.latency_seconds,
                memory=spec.key == "tillflow-memory",
            )
        )
    outcome = Outcome(spec.key, latency.status, latency.detail, latency_rate=spec.latency_rate)
    if latency.status == "ok":
        outcome.latency = latency.report
    else:
        outcome.detail = f"open-loop run: {latency.detail}"
    return outcome


LATENCY_APART: Final = ("tillflow-memory", "tillflow-sqlite-1")
"""tillflow's contenders whose open-loop run is a process of its own (the tills in a 2nd
process have none: an open loop needs the receipts in the sender's event loop)."""


def run_contender(spec: Spec, progress: Progress) -> Outcome:
    """One run of a contender: its process, and for tillflow a 2nd one for the open loop
    (one outcome: the latencies, the larger peak RSS, the first problem)."""
    if spec.key not in LATENCY_APART or not (spec.latency_rate and spec.latency_seconds):
        return run_isolated(spec, progress)
    outcome = run_isolated(replace(spec, latency_seconds=0.0), progress)
    if outcome.status != "ok":
        return outcome
    latency = run_isolated(replace(spec, latency_only=True), progress)
    outcome.peak_rss = max(outcome.peak_rss, latency.peak_rss)
    outcome.latency, outcome.latency_rate = latency.latency, latency.latency_rate
    if latency.status != "ok":
        outcome.status, outcome.detail = latency.status, latency.detail
    return outcome


def _peer(spec: Spec, progress: Progress) -> Outcome:
    try:
        from bench.peer import run_peer  # noqa: PLC0415  (optional: the bench extra)
    except ImportError as error:
        return Outcome(
            spec.key, "failed", f"{error}: install the bench extra (pip install -e '.[bench]')"
        )
    persistence, runner = PEER_SETUPS[spec.key]
    with _scratch(spec.directory) as directory:
        run = run_peer(
            directory,
            persistence,
            runner,
            spec.checkouts,
            latency_rate=spec.latency_rate,
            latency_seconds=spec.latency_seconds,
            stall_seconds=spec.stall_seconds,
            progress=progress,
        )
    outcome = Outcome(
        spec.key,
        run.status,
        run.detail,
        checkouts=run.checkouts,
        seconds=run.seconds,
        cpu_seconds=run.cpu_seconds,
        issued=run.issued,
        report=run.report or None,
        latency=run.latency,
        latency_rate=run.latency_rate,
    )
    missing = sum(1 for value in run.latency if math.isnan(value))
    if missing and outcome.status == "ok":
        outcome.status = "wrong"
        outcome.detail = f"{missing} open-loop checkouts never reached Reporting"
    return outcome


def _limit(spec: Spec, progress: Progress) -> Outcome:
    outcome = Outcome(spec.key, issued=spec.checkouts, checkouts=spec.checkouts)
    cpu = _cpu()
    if spec.key == "bare-loop":
        run = bare_loop(spec.checkouts)
        outcome.seconds, outcome.report = run.seconds, run.report.as_data()
    elif spec.key == "asyncio":
        run = asyncio.run(asyncio_pipeline(spec.checkouts))
        outcome.seconds, outcome.report = run.seconds, run.report.as_data()
    else:
        outcome.events_per_checkout = workload().events_per_checkout
        with _scratch(spec.directory) as directory:
            if spec.key == "sqlite-batched":
                outcome.rows_per_second = raw.batched_insert_rate(
                    directory / "raw.db", spec.batches, spec.batch_size
                )
                outcome.checkouts = round(
                    spec.batches * spec.batch_size / outcome.events_per_checkout
                )
            else:
                outcome.rows_per_second = raw.one_per_commit_rate(
                    directory / "raw.db", spec.single_commits
                )
                outcome.checkouts = spec.single_commits
        outcome.issued = 0  # rows counted by bench.raw: no report
    outcome.cpu_seconds = _cpu() - cpu
    if spec.key == "asyncio" and spec.latency_rate and spec.latency_seconds:
        count = max(1, round(spec.latency_rate * spec.latency_seconds))
        progress(f"asyncio pipeline: open loop at {spec.latency_rate:,.0f}/s")
        run = asyncio.run(asyncio_pipeline(count, spec.latency_rate))
        problems = violations(run.report, truth(count))
        if problems:
            outcome.status, outcome.detail = "wrong", "open-loop run: " + "; ".join(problems)
        outcome.latency, outcome.latency_rate = run.latency, spec.latency_rate
    return outcome


def measure(spec: Spec, progress: Progress) -> Outcome:
    """Run ``spec`` in this process."""
    side = BY_KEY[spec.key].side
    if side == "tillflow":
        return _tillflow(spec, progress)
    if side == "peer":
        return _peer(spec, progress)
    return _limit(spec, progress)


def _peak(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux: KiB


def _child(conn: Connection, spec: Spec) -> None:
    def progress(message: str) -> None:
        conn.send(("progress", message))

    tune_collector()  # every contender's process alike, as `tillflow serve` and `worker` run
    try:
        outcome = measure(spec, progress)
        outcome.peak_rss = _peak(resource.RUSAGE_SELF)
        if spec.key == "tillflow-sqlite-2":
            outcome.tills_peak_rss = _peak(resource.RUSAGE_CHILDREN)
        conn.send(("done", outcome))
    except BaseException:
        conn.send(("error", traceback.format_exc(limit=8)))
    finally:
        conn.close()


def _fresh() -> Any:
    """Fresh processes forked from a server that has imported the harness once (a run's
    process starts in milliseconds, with the same modules loaded for every contender)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.contenders"])
    return context


def run_isolated(spec: Spec, progress: Progress) -> Outcome:
    """:func:`measure` in a fresh process; killed (and ``stalled``) past ``spec.timeout``."""
    context = _fresh()
    ours, theirs = context.Pipe()
    process = context.Process(target=_child, args=(theirs, spec), name=f"bench-{spec.key}")
    process.start()
    theirs.close()
    deadline = time.monotonic() + spec.timeout
    try:
        while True:
            if ours.poll(0.2):
                try:
                    kind, value = ours.recv()
                except EOFError:
                    return Outcome(spec.key, "failed", f"the process died ({process.exitcode})")
                if kind == "progress":
                    progress(str(value))
                elif kind == "done" and isinstance(value, Outcome):
                    return _checked(value)
                else:
                    return Outcome(spec.key, "failed", str(value).strip().splitlines()[-1])
            elif not process.is_alive():
                return Outcome(spec.key, "failed", f"the process died ({process.exitcode})")
            elif time.monotonic() > deadline:
                process.kill()
                return Outcome(spec.key, "stalled", f"no result after {spec.timeout:.0f}s: killed")
    finally:
        process.join(10.0)
        if process.is_alive():
            process.kill()
            process.join(5.0)
        ours.close()


def _checked(outcome: Outcome) -> Outcome:
    """The run's report against the one truth (a run's own checks came first)."""
    if outcome.status == "ok" and outcome.report is not None:
        problems = violations(PosReport.from_data(outcome.report), truth(outcome.issued))
        if problems:
            outcome.status, outcome.detail = "wrong", "; ".join(problems)
    outcome.report = None  # checked; not kept
    return outcome


# -- repeats, medians, the table -----------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class Summary:
    """A contender's runs."""

    contender: Contender
    runs: list[Outcome]

    @property
    def good(self) -> list[Outcome]:
        return [run for run in self.runs if run.status == "ok"]

    @property
    def all_ok(self) -> bool:
        return bool(self.runs) and len(self.good) == len(self.runs)

    @property
    def rate(self) -> float:
        return _median([run.rate for run in self.good])

    @property
    def cpu(self) -> float:
        return _median([run.cpu_per_checkout for run in self.good])

    def latency(self, fraction: float) -> float:
        return _median([percentile(run.latency, fraction) for run in self.good if run.latency])

    @property
    def latency_rate(self) -> float:
        return _median([run.latency_rate for run in self.good if run.latency])

    @property
    def peak_rss(self) -> int:
        return max((run.peak_rss for run in self.runs), default=0)

    @property
    def tills_peak_rss(self) -> int:
        return max((run.tills_peak_rss for run in self.runs), default=0)

    def correctness(self) -> str:
        if not self.runs:
            return "not run"
        if self.all_ok:
            checked = "rows counted" if self.contender.key.startswith("sqlite-") else "correct"
            return f"{checked} {len(self.runs)}/{len(self.runs)}"
        counts: dict[str, int] = {}
        for run in self.runs:
            if run.status != "ok":
                counts[run.status] = counts.get(run.status, 0) + 1
        return ", ".join(
            f"{status.upper()} {count}/{len(self.runs)}" for status, count in counts.items()
        )

    def problem(self) -> str:
        bad = [run for run in self.runs if run.status != "ok"]
        return f"{bad[0].status}: {bad[0].detail}" if bad else ""

    def rate_text(self) -> str:
        if not self.all_ok:
            return "NOT TIMED"
        return rate(self.rate)

    def rss_text(self) -> str:
        if not self.peak_rss:
            return "—"
        if self.tills_peak_rss:
            return f"{mib(self.peak_rss)} + {mib(self.tills_peak_rss)}"
        return mib(self.peak_rss)

    def data(self) -> dict[str, Any]:
        return {
            "label": self.contender.label,
            "side": self.contender.side,
            "store": self.contender.store,
            "all_ok": self.all_ok,
            "rate": self.rate if self.good else None,
            "cpu_us_per_checkout": self.cpu if self.good else None,
            "p50_ms": self.latency(0.5) if self.good else None,
            "p99_ms": self.latency(0.99) if self.good else None,
            "latency_rate": self.latency_rate if self.good else None,
            "peak_rss": self.peak_rss,
            "tills_peak_rss": self.tills_peak_rss or None,
            "runs": [run.summary() for run in self.runs],
        }


def _latency_text(summary: Summary) -> str:
    key = summary.contender.key
    if key == "tillflow-sqlite-2":
        return "see tills in a thread"
    if key == "bare-loop" or key.startswith("sqlite-"):
        return "n/a: no pipeline"
    if not summary.all_ok:
        return "—"
    p50, p99 = summary.latency(0.5), summary.latency(0.99)
    if math.isnan(p50):
        return "—"
    measured = sum(1 for run in summary.good if run.latency)
    runs = (
        "" if measured == len(summary.runs) else f" ({measured} run{'s' if measured > 1 else ''})"
    )
    return f"{p50:.1f} / {p99:.1f} ms @ {summary.latency_rate:,.0f}/s{runs}"


def _best(summaries: Sequence[Summary]) -> Summary | None:
    """The fastest contender whose runs were all correct (else the fastest with any)."""
    ranked = [summary for summary in summaries if summary.all_ok] or [
        summary for summary in summaries if summary.good
    ]
    return max(ranked, key=lambda summary: summary.rate, default=None)


@dataclass
class References:
    """What each tillflow figure is divided by."""

    peer: dict[Store, Summary | None]
    limit: dict[Store, Summary | None]

    @classmethod
    def of(cls, summaries: dict[str, Summary]) -> References:
        def side(name: Side, store: Store) -> list[Summary]:
            return [
                summary
                for summary in summaries.values()
                if summary.contender.side == name and summary.contender.store == store
            ]

        return cls(
            peer={store: _best(side("peer", store)) for store in ("memory", "sqlite")},
            limit={
                "memory": summaries.get("asyncio"),
                "sqlite": summaries.get("sqlite-batched"),
            },
        )

    def peer_ratio(self, summary: Summary) -> float | None:
        peer = self.peer[summary.contender.store]
        if summary.contender.side != "tillflow" or peer is None or not summary.good:
            return None
        return summary.rate / peer.rate if peer.rate else None

    def limit_ratio(self, summary: Summary) -> float | None:
        limit = self.limit[summary.contender.store]
        if summary.contender.side == "limit" or limit is None or not limit.good:
            return None
        if not summary.good:
            return None
        return summary.rate / limit.rate if limit.rate else None


def _notes(summary: Summary, references: References, sizes: Sizes) -> str:
    contender = summary.contender
    runs = summary.runs
    parts: list[str] = []
    if runs and not contender.key.startswith("sqlite-"):
        parts.append(f"{runs[0].checkouts if runs[0].checkouts else '?':,} checkouts per run")
    if contender.key.startswith("sqlite-") and summary.good:
        run = summary.good[0]
        rows = _median([outcome.rows_per_second for outcome in summary.good])
        if contender.key == "sqlite-batched":
            parts.append(
                f"{rate(rows, ' rows/s')} ÷ {run.events_per_checkout:.2f} events per checkout "
                f"(tillflow's log: CheckedOut + a ProductTaken per line); "
                f"{sizes.batches} × {sizes.batch_size:,} rows (bench.raw)"
            )
        else:
            parts.append(
                f"{rate(rows, ' commits/s')}, one row each: a checkout durable on its own "
                f"commit goes no faster; {sizes.single_commits:,} commits (bench.raw)"
            )
    if summary.good and not math.isnan(summary.cpu) and not contender.key.startswith("sqlite-"):
        parts.append(f"CPU {summary.cpu:,.1f} µs/checkout")
    if contender.side == "tillflow" and summary.good:
        peer = references.peer[contender.store]
        if peer is not None and peer.good:
            parts.append(
                f"peer = {peer.contender.label.removeprefix('eventsourcing, ')} "
                f"({rate(peer.rate)}, CPU {peer.cpu:,.0f} µs/checkout; peak RSS "
                f"{summary.peak_rss / max(peer.peak_rss, 1):.2f}× the peer's, which rang up "
                f"{peer.runs[0].checkouts:,} checkouts per run)"
            )
    if contender.key == "bare-loop":
        parts.append("the ceiling of any Python implementation; its RSS is the harness's floor")
    if contender.key == "asyncio":
        parts.append("no events, no store: Sale → Inventory → Reporting tasks, bounded queues")
    if contender.side == "peer" and summary.good and summary.latency_rate:
        parts.append("open loop at half its own throughput (it cannot sustain 1,000/s)")
    if not summary.all_ok:
        good = summary.good
        if good:
            parts.append(f"the {len(good)} correct runs: median {rate(summary.rate)}")
        parts.append(summary.problem())
    return "; ".join(parts)


def contenders_grid(summaries: dict[str, Summary], sizes: Sizes, repeats: int) -> Grid:
    references = References.of(summaries)
    rows: list[list[Cell]] = []
    for contender in CONTENDERS:
        summary = summaries.get(contender.key)
        if summary is None:
            continue
        rows.append(
            [
                contender.label,
                summary.rate_text(),
                _latency_text(summary),
                summary.rss_text(),
                summary.correctness(),
                ratio_text(references.peer_ratio(summary)),
                ratio_text(references.limit_ratio(summary)),
                _notes(summary, references, sizes),
            ]
        )
    return Grid(
        title=f"contenders: the point-of-sale workload end to end (median of {repeats} runs)",
        columns=[
            Column("contender"),
            Column("checkouts/s", "right"),
            Column("p50 / p99 checkout → report", "right"),
            Column("peak RSS", "right"),
            Column("correct"),
            Column("× peer", "right"),
            Column("× limit", "right"),
            Column("notes", wrap=True),
        ],
        rows=rows,
        caption=(
            "Each run in a fresh process; peak RSS is that process's (+ the tills' process), "
            "interpreter and harness included. × peer: tillflow's rate over the fastest "
            "correct eventsourcing runner on the same kind of store (memory: POPO). × limit: "
            "over the bare asyncio pipeline (memory) or raw batched SQLite inserts in "
            "checkouts' worth of rows (SQLite). Latency: from each checkout's scheduled send "
            "(open loop) to the report reflecting it, after the throughput run (tillflow: in a "
            "process of its own; the peer: in the same system, at half its throughput). "
            "All SQLite runs: WAL, synchronous=FULL (tillflow durability full; the library's "
            "default)."
        ),
    )


def _spec(contender: Contender, sizes: Sizes, context: Context, **overrides: Any) -> Spec:
    checkouts = sizes.contender_checkouts
    if contender.side == "peer":
        checkouts = (
            sizes.peer_checkouts if contender.store == "memory" else (sizes.peer_sqlite_checkouts)
        )
    options: dict[str, Any] = {
        "key": contender.key,
        "checkouts": checkouts,
        "directory": None if context.directory is None else str(context.directory),
        "latency_rate": LATENCY_RATE,
        "latency_seconds": sizes.contender_latency_seconds,
        "stall_seconds": sizes.stall_seconds,
        "batches": sizes.batches,
        "batch_size": sizes.batch_size,
        "single_commits": sizes.single_commits,
    }
    options.update(overrides)
    return Spec(**options)


def _run_all(
    context: Context, specs: Callable[[Contender, int], Spec | None], what: str
) -> dict[str, Summary]:
    summaries: dict[str, Summary] = {}
    for repeat in range(context.repeats):
        order = CONTENDERS if repeat % 2 == 0 else tuple(reversed(CONTENDERS))
        for contender in order:
            spec = specs(contender, repeat)
            if spec is None:
                continue
            context.progress(f"{what}, run {repeat + 1}/{context.repeats}: {contender.label}")
            outcome = run_contender(spec, context.progress)
            summaries.setdefault(contender.key, Summary(contender, [])).runs.append(outcome)
    return summaries


def contenders(context: Context) -> list[CaseResult]:
    """Cases 9 and 10: every contender, ``repeats`` times; the table."""
    sizes = context.sizes

    def spec(contender: Contender, repeat: int) -> Spec:
        latency = sizes.contender_latency_seconds if repeat < sizes.latency_repeats else 0.0
        return _spec(contender, sizes, context, latency_seconds=latency)

    summaries = _run_all(context, spec, "contenders")
    context.tables["contenders"] = contenders_grid(summaries, sizes, context.repeats)
    context.tables_data["contenders"] = {key: summary.data() for key, summary in summaries.items()}
    references = References.of(summaries)
    return [_peer_case(summaries, references), _asyncio_case(summaries, references)]


def _peer_case(summaries: dict[str, Summary], references: References) -> CaseResult:
    ours = _best([summaries[key] for key in ("tillflow-sqlite-1", "tillflow-sqlite-2")])
    peer = references.peer["sqlite"]
    case, target = "9 SQLite vs eventsourcing", f"≥ {PEER_TARGET:g}×"
    if ours is None or peer is None or not ours.all_ok:
        problems = [
            summary.problem()
            for summary in (
                summaries.get("tillflow-sqlite-1"),
                summaries.get("tillflow-sqlite-2"),
                peer,
            )
            if summary is not None
        ]
        problem = next((text for text in problems if text), "")
        return CaseResult(case, "NOT TIMED", "—", None, target, False, problem or "no peer")
    ratio = ours.rate / peer.rate
    return CaseResult(
        case=case,
        tillflow=rate(ours.rate, " checkouts/s"),
        reference=f"{rate(peer.rate, ' checkouts/s')}",
        ratio=ratio,
        target=target,
        passed=ratio >= PEER_TARGET,
        notes=(
            f"{ours.contender.label} against {peer.contender.label} (the fastest correct "
            f"runner on SQLite, {peer.correctness()}); see the contenders' table"
        ),
    )


def _asyncio_case(summaries: dict[str, Summary], references: References) -> CaseResult:
    ours = summaries.get("tillflow-memory")
    limit = references.limit["memory"]
    case, target = "10 memory store vs asyncio", f"≥ {ASYNCIO_TARGET:g}×"
    if ours is None or limit is None or not ours.all_ok or not limit.all_ok:
        problem = (ours.problem() if ours else "") or (limit.problem() if limit else "")
        return CaseResult(case, "NOT TIMED", "—", None, target, False, problem)
    ratio = ours.rate / limit.rate
    peer = references.peer["memory"]
    versus = (
        f"; {ours.rate / peer.rate:,.0f}× {peer.contender.label} ({rate(peer.rate)})"
        if peer is not None and peer.rate
        else ""
    )
    return CaseResult(
        case=case,
        tillflow=rate(ours.rate, " checkouts/s"),
        reference=f"asyncio {rate(limit.rate, ' checkouts/s')}",
        ratio=ratio,
        target=target,
        passed=ratio >= ASYNCIO_TARGET,
        notes=(
            f"the whole shop on the memory store against the bare 3-stage asyncio pipeline"
            f"{versus}; CPU {ours.cpu:,.1f} µs/checkout against {limit.cpu:,.2f}"
        ),
    )


# -- scaling -------------------------------------------------------------------------------

SCALED: Final = ("tillflow-memory", "tillflow-sqlite-2")
PEER_SCALED: Final = ("es-popo-single", "es-sqlite-single")


def scaling(context: Context) -> list[CaseResult]:
    """Case 11: one run per size; throughput, CPU and peak memory as the run grows."""
    sizes = context.sizes
    runs: dict[tuple[str, int], Outcome] = {}
    plan = [(key, count) for count in sizes.scaling for key in SCALED]
    plan += [(key, count) for count in sizes.peer_scaling for key in PEER_SCALED]
    for index, (key, count) in enumerate(plan):
        contender = BY_KEY[key]
        context.progress(f"scaling {index + 1}/{len(plan)}: {contender.label}, {count:,}")
        spec = _spec(
            contender,
            sizes,
            context,
            checkouts=count,
            latency_rate=0.0,
            latency_seconds=0.0,
            segments=SCALING_SEGMENTS if contender.side == "tillflow" else 1,
        )
        runs[key, count] = run_isolated(spec, context.progress)
    context.tables["scaling"] = scaling_grid(runs, sizes)
    context.tables_data["scaling"] = {
        f"{key} {count}": outcome.summary() for (key, count), outcome in runs.items()
    }
    if len(sizes.scaling) < 2:
        return []
    return [_flat_case(key, runs, sizes.scaling) for key in SCALED]


def _flatness(first: Outcome, last: Outcome) -> tuple[float, float]:
    """(rate ratio, CPU-per-checkout ratio) of the larger run over the smaller."""
    return last.rate / first.rate, last.cpu_per_checkout / first.cpu_per_checkout


def _is_flat(rate_ratio: float, cpu_ratio: float) -> bool:
    return rate_ratio >= FLAT_RATE and cpu_ratio <= FLAT_CPU


def scaling_grid(runs: dict[tuple[str, int], Outcome], sizes: Sizes) -> Grid:
    rows: list[list[Cell]] = []
    for key in (*SCALED, *PEER_SCALED):
        counts = sorted(count for (run_key, count) in runs if run_key == key)
        first = runs[key, counts[0]] if counts else None
        for count in counts:
            outcome = runs[key, count]
            ok = outcome.status == "ok"
            rss = mib(outcome.peak_rss) if outcome.peak_rss else "—"
            if outcome.tills_peak_rss:
                rss += f" + {mib(outcome.tills_peak_rss)}"
            if not ok:
                cost = f"{outcome.status.upper()}: {outcome.detail}"
            elif first is None or first is outcome:
                cost = "the baseline"
            elif first.status != "ok":
                cost = "no baseline"
            else:
                rate_ratio, cpu_ratio = _flatness(first, outcome)
                word = "flat" if _is_flat(rate_ratio, cpu_ratio) else "NOT flat"
                cost = f"{word}: rate {rate_ratio:.2f}×, CPU/checkout {cpu_ratio:.2f}×"
            within = ""
            if ok and len(outcome.segments) > 1 and count // len(outcome.segments) >= 10_000:
                first_segment, last_segment = outcome.segments[0], outcome.segments[-1]
                within = (
                    f"; within the run, {len(outcome.segments)} segments: first "
                    f"{first_segment[0] / first_segment[1]:,.0f}/s, last "
                    f"{last_segment[0] / last_segment[1]:,.0f}/s"
                )
            rows.append(
                [
                    BY_KEY[key].label,
                    f"{count:,}",
                    rate(outcome.rate) if ok else "NOT TIMED",
                    f"{outcome.cpu_per_checkout:,.0f}" if ok else "—",
                    rss,
                    "correct" if ok else outcome.status.upper(),
                    cost + within,
                ]
            )
    peer_sizes = ", ".join(f"{count:,}" for count in sizes.peer_scaling)
    peer_note = (
        f"The peer ran only at {peer_sizes} checkouts"
        if peer_sizes
        else "The peer did not run at these sizes"
    )
    return Grid(
        title="scaling: one run per size",
        columns=[
            Column("contender"),
            Column("checkouts", "right"),
            Column("checkouts/s", "right"),
            Column("CPU µs/checkout", "right"),
            Column("peak RSS", "right"),
            Column("correct"),
            Column("cost per checkout vs the smallest run", wrap=True),
        ],
        rows=rows,
        caption=(
            f"Flat: the larger run goes at ≥ {FLAT_RATE:g}× the smallest run's rate and spends "
            f"≤ {FLAT_CPU:g}× its CPU per checkout (CPU is what a shared machine disturbs "
            f"least). {peer_note}: at its rate (about 500 checkouts per second in memory, 200 "
            "on SQLite) 100k checkouts take minutes, 1M hours, per run."
        ),
    )


def short(count: int) -> str:
    """10000 → 10k, 1000000 → 1M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= size and count % size == 0:
            return f"{count // size:,}{suffix}"
    return f"{count:,}"


def _flat_case(key: str, runs: dict[tuple[str, int], Outcome], counts: Sequence[int]) -> CaseResult:
    label = BY_KEY[key].label
    smallest, largest = min(counts), max(counts)
    case = f"11 flat cost {short(smallest)} → {short(largest)}, {label.removeprefix('tillflow, ')}"
    target = f"≥ {FLAT_RATE:g}× rate, ≤ {FLAT_CPU:g}× CPU"
    first, last = runs.get((key, smallest)), runs.get((key, largest))
    bad = [run for run in (first, last) if run is None or run.status != "ok"]
    if first is None or last is None or bad:
        detail = next((f"{run.status}: {run.detail}" for run in bad if run is not None), "")
        return CaseResult(case, "NOT TIMED", "—", None, target, False, detail)
    rate_ratio, cpu_ratio = _flatness(first, last)
    return CaseResult(
        case=case,
        tillflow=f"{rate(first.rate)} → {rate(last.rate)}",
        reference=f"CPU {first.cpu_per_checkout:,.0f} → {last.cpu_per_checkout:,.0f} µs",
        ratio=rate_ratio,
        target=target,
        passed=_is_flat(rate_ratio, cpu_ratio),
        notes=(
            f"checkouts/s and CPU per checkout, {smallest:,} against {largest:,} checkouts; "
            f"CPU {cpu_ratio:.2f}×; peak RSS {mib(first.peak_rss)} → {mib(last.peak_rss)}"
            + (f" (+ tills {mib(last.tills_peak_rss)})" if last.tills_peak_rss else "")
            + "; see the scaling table"
        ),
    )


CONTENDER_CASES: Final = (contenders,)
SCALING_CASES: Final = (scaling,)
