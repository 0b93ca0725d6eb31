"""Prometheus metrics at ``/metrics`` (text format), one registry per app.

* per processor and lane, read at scrape time from the runtime's statistics:
  ``tillflow_processor_checkpoint``, ``…_head``, ``…_lag_events``, ``…_lag_seconds``,
  ``…_last_batch_size``, ``…_stalled_seconds`` (behind without progress), ``…_state``
  (1 for the current state: ``stalled`` once that passes ``stall_after``), the gauge
  ``tillflow_processor_stalled_lanes`` per processor, and the counters
  ``…_batches_total``, ``…_scanned_total``, ``…_handled_total``, ``…_failures_total``
  (mean batch size = rate(scanned) / rate(batches));
* ``tillflow_checkout_to_report_seconds``: for checkouts appended through this server,
  from the acknowledgement of the append until the reporting checkpoint passed it (``0``
  when the report passed it first: under load it can, before the request goes on);
* ``tillflow_store_unavailable``, ``tillflow_store_degraded_seconds`` and the counters
  ``tillflow_store_retries``, ``tillflow_store_outages`` (:mod:`tillflow.http.store_metrics`);
* ``tillflow_low_stock_products`` and the counter ``tillflow_low_stock_alerts``, from the
  report (:mod:`tillflow.http.low_stock_metrics`);
* per processor and lane, parked keys, the events they hold and the oldest one's age
  (:mod:`tillflow.http.dead_letter_metrics`);
* ``tillflow_http_request_duration_seconds`` by method, route template (never the raw
  path: bounded cardinality) and status;
* on PostgreSQL, read at scrape time from the lease tables (so they count every worker,
  on any machine): per processor group and lane the counters ``tillflow_lease_changes``
  (acquisitions: the lane's epoch) and ``tillflow_fenced_commits`` (batches refused by
  the fence), the gauge ``tillflow_lease_expires_in_seconds``; ``tillflow_workers_live``;
  ``tillflow_worker_lanes`` per live worker and group. Lanes are labelled like the
  processor metrics (their count is fixed when the database is created: 16 by default,
  at most 1,024); workers only while alive. Absent on SQLite and memory stores, where
  one process runs every lane.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillflow.engine import ProcessorStatistics, Receipt
from tillflow.engine.lane_processor import State
from tillflow.engine.outage import StoreStatus
from tillflow.engine.postgres.leases import LeaseOverview
from tillflow.http.dead_letter_metrics import DeadLetterCollector
from tillflow.http.low_stock_metrics import LowStockCollector
from tillflow.http.store_metrics import StoreHealthCollector
from tillflow.shop.reporting.rows import ProductRow

log = logging.getLogger("tillflow.http")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MOST_TRACKED = 100_000
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ProcessorCollector(Collector):
    """Describes every processor on every lane at scrape time."""

    def __init__(self, statistics: Callable[[], list[ProcessorStatistics]]) -> None:
        self.statistics = statistics

    def collect(self) -> Iterator[Metric]:
        labels = ["processor", "lane"]
        gauges = {
            "checkpoint": GaugeMetricFamily(
                "tillflow_processor_checkpoint", "Last position scanned (durable).", labels=labels
            ),
            "head": GaugeMetricFamily(
                "tillflow_processor_head", "Last position recorded on the lane.", labels=labels
            ),
            "lag_events": GaugeMetricFamily(
                "tillflow_processor_lag_events",
                "Positions between checkpoint and head.",
                labels=labels,
            ),
            "lag_seconds": GaugeMetricFamily(
                "tillflow_processor_lag_seconds",
                "Age of the oldest event not yet scanned (0 when caught up).",
                labels=labels,
            ),
            "last_batch": GaugeMetricFamily(
                "tillflow_processor_last_batch_size", "Positions in the last batch.", labels=labels
            ),
            "stalled_seconds": GaugeMetricFamily(
                "tillflow_processor_stalled_seconds",
                "Seconds behind the head without the checkpoint moving (0 when caught up).",
                labels=labels,
            ),
        }
        counters = {
            "batches": CounterMetricFamily(
                "tillflow_processor_batches", "Batches committed by this server.", labels=labels
            ),
            "scanned": CounterMetricFamily(
                "tillflow_processor_scanned", "Positions scanned by this server.", labels=labels
            ),
            "handled": CounterMetricFamily(
                "tillflow_processor_handled", "Events handled by this server.", labels=labels
            ),
            "failures": CounterMetricFamily(
                "tillflow_processor_failures",
                "Failed batches (handler or store errors) in this server.",
                labels=labels,
            ),
        }
        states = GaugeMetricFamily(
            "tillflow_processor_state",
            "1 for the processor's current state.",
            labels=[*labels, "state"],
        )
        stalled: dict[str, int] = {}
        for row in self.statistics():
            key = [row.processor, str(row.lane)]
            for name, family in gauges.items():
                family.add_metric(key, float(getattr(row, name)))
            for name, counter in counters.items():
                counter.add_metric(key, float(getattr(row, name)))
            for state in State:
                states.add_metric([*key, state.value], 1.0 if row.state == state.value else 0.0)
            stalled[row.processor] = stalled.get(row.processor, 0) + int(
                row.state == State.STALLED.value
            )
        yield from gauges.values()
        yield from counters.values()
        yield states
        lanes = GaugeMetricFamily(
            "tillflow_processor_stalled_lanes",
            "Lanes of the processor behind without progress for stall_after seconds.",
            labels=["processor"],
        )
        for processor, count in stalled.items():
            lanes.add_metric([processor], float(count))
        yield lanes


class LeaseCollector(Collector):
    """Describes the lease tables at scrape time; nothing when there are none (a store
    that does not lease lanes) or when the database cannot answer (logged)."""

    def __init__(self, overview: Callable[[], LeaseOverview | None]) -> None:
        self.overview = overview

    def collect(self) -> Iterator[Metric]:
        try:
            overview = self.overview()
        except Exception as error:
            log.warning("lease metrics left out: %s", error)
            return
        if overview is None:
            return
        labels = ["processor", "lane"]
        changes = CounterMetricFamily(
            "tillflow_lease_changes",
            "Times the lane's lease was taken, by any worker (each taking bumps its epoch).",
            labels=labels,
        )
        fenced = CounterMetricFamily(
            "tillflow_fenced_commits",
            "Batches of the lane refused, nothing written, because their worker had lost "
            "the lease (any worker).",
            labels=labels,
        )
        expires = GaugeMetricFamily(
            "tillflow_lease_expires_in_seconds",
            "Seconds until the lane's lease expires by the database clock; negative once "
            "expired or resigned (no worker holds the lane).",
            labels=labels,
        )
        refused = dict(overview.fenced)
        for row in overview.leases:
            key = [row.processor, str(row.lane)]
            changes.add_metric(key, float(row.epoch))
            fenced.add_metric(key, float(refused.pop((row.processor, row.lane), 0)))
            expires.add_metric(key, row.remaining)
        for (processor, lane), count in sorted(refused.items()):  # refused, never leased
            fenced.add_metric([processor, str(lane)], float(count))
        live = GaugeMetricFamily(
            "tillflow_workers_live", "Workers whose heartbeat has not expired (database clock)."
        )
        live.add_metric([], float(len(overview.workers)))
        held = GaugeMetricFamily(
            "tillflow_worker_lanes",
            "Lanes of the processor group a live worker holds now.",
            labels=["worker", "processor"],
        )
        groups = sorted({row.processor for row in overview.leases})
        for holding in overview.holdings():
            for group in groups:
                held.add_metric([holding.worker, group], float(len(holding.lanes.get(group, []))))
        yield from (changes, fenced, expires, live, held)


_PASSED_AT_START: ContextVar[dict[int, int] | None] = ContextVar(
    "tillflow_passed_at_request_start", default=None
)
"""What the report had passed, per lane, when the current request began (set by
:class:`RequestMetrics` for writes)."""


class LatencyTracker:
    """Checkouts appended through this server, by lane and position, until the report's
    checkpoint passes them; then their latency is observed. Bounded: past
    ``MOST_TRACKED`` pending, the oldest are dropped. Used from the event loop only.

    A checkout the report passed before the request that acknowledges it began is a
    replay (a retry answered with the original receipt) and is not counted again; one it
    passed while that request ran is new and counted with latency ``0`` (a retry racing
    its original may be counted twice)."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.pending: dict[int, list[tuple[int, float]]] = {}
        self.passed: dict[int, int] = {}
        self.size = 0

    def appended(self, receipt: Receipt, at: float | None = None) -> None:
        """A checkout was acknowledged (``at``: ``time.monotonic()``, default now). Outside
        a request the report's progress so far stands for the request's start."""
        at = time.monotonic() if at is None else at
        before = _PASSED_AT_START.get()
        for lane, position in receipt.positions.items():
            if position <= self.passed.get(lane, 0):
                if before is not None and position > before.get(lane, 0):
                    self.histogram.observe(0.0)  # the report was there first
                continue  # else a replayed checkout the report passed before
            heapq.heappush(self.pending.setdefault(lane, []), (position, at))
            self.size += 1
        while self.size > MOST_TRACKED:
            lane = max(self.pending, key=lambda key: len(self.pending[key]))
            heapq.heappop(self.pending[lane])
            self.size -= 1

    def progressed(self, checkpoint: dict[int, int]) -> None:
        """The report passed ``checkpoint``: observe every checkout at or below it."""
        now = time.monotonic()
        for lane, position in checkpoint.items():
            self.passed[lane] = position
            waiting = self.pending.get(lane)
            while waiting and waiting[0][0] <= position:
                _, at = heapq.heappop(waiting)
                self.size -= 1
                self.histogram.observe(now - at)


class Metrics:
    """The app's metrics registry."""

    def __init__(self) -> None:
        self.statistics: Callable[[], list[ProcessorStatistics]] = list
        """Where processor statistics come from (the runtime, once started)."""
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "tillflow_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.checkout_to_report = Histogram(
            "tillflow_checkout_to_report_seconds",
            "From a checkout's acknowledgement to the report passing it (this server's).",
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.latency = LatencyTracker(self.checkout_to_report)
        self.leases: Callable[[], LeaseOverview | None] = self.no_leases
        """Where the lease tables come from (the store, on PostgreSQL)."""
        self.registry.register(ProcessorCollector(self._statistics))
        self.registry.register(LeaseCollector(self._leases))
        self.store_health: Callable[[], StoreStatus | None] = lambda: None
        """The database as the processors see it (the runtime's health, once started)."""
        self.registry.register(StoreHealthCollector(self._store_health))
        self.report_rows: Callable[[], list[ProductRow]] = list
        """The report's rows (the shop's, once started)."""
        self.registry.register(LowStockCollector(self._report_rows))
        self.dead_letters = DeadLetterCollector()
        self.registry.register(self.dead_letters)
        self._request_series: dict[tuple[str, str, int], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request's latency under its method, route template and status."""
        key = (method, route, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.requests.labels(method, route, str(status))
        series.observe(seconds)

    def _statistics(self) -> list[ProcessorStatistics]:
        return self.statistics()

    def _leases(self) -> LeaseOverview | None:
        return self.leases()

    def _store_health(self) -> StoreStatus | None:
        return self.store_health()

    def _report_rows(self) -> list[ProductRow]:
        return self.report_rows()

    @staticmethod
    def no_leases() -> LeaseOverview | None:
        """The lease tables of a store that has none (or of no store)."""
        return None

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: observes each request's latency under its route template and logs
    one line per request (the template, never the query string, so tokens passed in a URL
    never reach a log)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # a POST may acknowledge a checkout: what the report had passed before it began
        passed = dict(self.metrics.latency.passed) if scope["method"] == "POST" else None
        request_start = _PASSED_AT_START.set(passed)

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            _PASSED_AT_START.reset(request_start)
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.observe_request(method, route, status, elapsed)
            log.info("%s %s %d %.1f ms", method, route, status, elapsed * 1000)
