"""``/metrics`` for the database as this server's processors see it: whether it is away,
for how long, and how many of its errors were waited out (see
:mod:`tillflow.engine.outage`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tillflow.engine.outage import StoreStatus


class StoreHealthCollector(Collector):
    """Describes ``status()`` at scrape time (nothing while it is ``None``: no runtime)."""

    def __init__(self, status: Callable[[], StoreStatus | None]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        if status is None:
            return
        unavailable = GaugeMetricFamily(
            "tillflow_store_unavailable",
            "1 while the database cannot be reached by this server's processors (they retry "
            "with backoff and resume by themselves), else 0.",
        )
        unavailable.add_metric([], 1.0 if status.state == "degraded" else 0.0)
        seconds = GaugeMetricFamily(
            "tillflow_store_degraded_seconds",
            "How long the current database outage has lasted (0 when none).",
        )
        seconds.add_metric([], status.seconds)
        retries = CounterMetricFamily(
            "tillflow_store_retries", "Database errors this server's processors waited out."
        )
        retries.add_metric([], float(status.retries))
        outages = CounterMetricFamily(
            "tillflow_store_outages", "Database outages this server's processors went through."
        )
        outages.add_metric([], float(status.outages))
        yield from (unavailable, seconds, retries, outages)
