"""``/metrics`` for low stock, read from the report's rows at scrape time (so they count what
every worker recorded, as of the report's freshness): ``tillflow_low_stock_products``, the
products below their reorder point now, and the counter ``tillflow_low_stock_alerts``, the
``LowStock`` alerts Inventory has recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tillflow.shop.inventory.stock import is_low
from tillflow.shop.reporting.rows import ProductRow

log = logging.getLogger("tillflow.http")


class LowStockCollector(Collector):
    """Describes ``rows()`` at scrape time (nothing when the store cannot answer: logged)."""

    def __init__(self, rows: Callable[[], list[ProductRow]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        try:
            rows = self.rows()
        except Exception as error:
            log.warning("low stock metrics left out: %s", error)
            return
        products = GaugeMetricFamily(
            "tillflow_low_stock_products",
            "Products whose stock is below their reorder point (as of the report).",
        )
        products.add_metric([], float(sum(is_low(r.stock_left, r.reorder_point) for r in rows)))
        alerts = CounterMetricFamily(
            "tillflow_low_stock_alerts",
            "LowStock alerts recorded, one per fall below a reorder point (as of the report).",
        )
        alerts.add_metric([], float(sum(row.low_alerts for row in rows)))
        yield from (products, alerts)
