"""``/metrics`` for low stock read from report rows: products low now and alerts ever; a
store that cannot answer leaves them out of the scrape instead of failing it."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tillflow.http.low_stock_metrics import LowStockCollector
from tillflow.shop.reporting.rows import AsOf, ProductRow


def _scrape(collector: LowStockCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_low_products_and_alerts_are_counted_from_the_rows() -> None:
    rows = [
        ProductRow("apple", stock_left=3, reorder_point=5, low_since=AsOf(0, 9), low_alerts=2),
        ProductRow("pear", stock_left=5, reorder_point=5, low_alerts=1),  # at the point
        ProductRow("milk", stock_left=-2, reorder_point=0),  # short, but no point
    ]
    text = _scrape(LowStockCollector(lambda: rows))
    assert "tillflow_low_stock_products 1.0" in text
    assert "tillflow_low_stock_alerts_total 3.0" in text


def test_a_store_that_cannot_answer_leaves_them_out(caplog: pytest.LogCaptureFixture) -> None:
    def away() -> list[ProductRow]:
        raise OSError("connection refused")

    with caplog.at_level(logging.WARNING, "tillflow.http"):
        text = _scrape(LowStockCollector(away))
    assert "tillflow_low_stock" not in text
    assert "low stock metrics left out: connection refused" in caplog.text
