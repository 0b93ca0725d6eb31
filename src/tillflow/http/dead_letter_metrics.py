"""``/metrics`` for parked events, read from the store at scrape time (so they count every
worker's): per processor and lane ``tillflow_processor_parked_keys``,
``tillflow_processor_parked_events`` (heads and the events held behind them) and
``tillflow_processor_oldest_parked_seconds``; lanes with nothing parked are left out."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tillflow.engine import EventStore
from tillflow.engine.dead_letters import ParkedKey, parked_keys, tally

log = logging.getLogger("tillflow.http")


class DeadLetterCollector(Collector):
    """Describes ``parked()`` at scrape time (nothing when the store cannot answer: logged);
    nothing parked until :meth:`counting` a store."""

    def __init__(self) -> None:
        self.parked: Callable[[], list[ParkedKey]] = list

    @contextlib.asynccontextmanager
    async def counting(
        self, store: EventStore, processors: Sequence[str], away: Callable[[], bool]
    ) -> AsyncIterator[None]:
        """Describe ``processors``' parked keys in ``store`` while the block runs, left out
        at once while ``away()`` (the processors find the database away: a scrape must not
        wait on it)."""
        self.parked = lambda: [] if away() else parked_keys(store, processors)
        try:
            yield
        finally:
            self.parked = list

    def collect(self) -> Iterator[Metric]:
        try:
            counted = tally(self.parked())
        except Exception as error:
            log.warning("dead letter metrics left out: %s", error)
            return
        labels = ["processor", "lane"]
        keys = GaugeMetricFamily(
            "tillflow_processor_parked_keys", "Keys parked (dead letters).", labels=labels
        )
        events = GaugeMetricFamily(
            "tillflow_processor_parked_events",
            "Events parked or held behind a parked key.",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "tillflow_processor_oldest_parked_seconds",
            "Age of the oldest parked key.",
            labels=labels,
        )
        now = time.time()
        for (processor, lane), each in sorted(counted.items()):
            place = [processor, str(lane)]
            keys.add_metric(place, float(each.keys))
            events.add_metric(place, float(each.events))
            oldest.add_metric(place, max(0.0, now - each.oldest_at))
        yield from (keys, events, oldest)
