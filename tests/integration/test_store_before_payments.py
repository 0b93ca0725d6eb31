"""A SQLite store written by the release before payments and VAT (made by
``tests/fixtures/old_shop/make_old_shop.py``) opened by today's code: the file migrates,
its ``CheckedOut`` events (schema version 1: no tenders, no tax) read as version 2 by the
documented rule, the processors handle the backlog, and the report shows the old
release's figures — with a cash tender of each total and no tax on any old sale. The log
itself is never rewritten."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tillflow.engine import SchemaTooNew, SqliteEventStore
from tillflow.engine.sqlite import SCHEMA_VERSION
from tillflow.shop.assembly import REGISTRY, Shop
from tillflow.shop.reporting.rows import RateTotals
from tillflow.shop.sale.events import CheckedOut
from tillflow.shop.sale.tenders import CASH, PaidTender
from tillflow.shop.sale.vat import BEFORE_VAT

FIXTURE = Path(__file__).parent.parent / "fixtures" / "old_shop"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    copy = tmp_path / "old_shop.db"
    shutil.copy(FIXTURE / "old_shop.db", copy)
    return copy


def _raw_checkouts(path: Path) -> dict[str, tuple[int, bytes]]:
    """Each checkout's (schema version, data) as the file holds them."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT stream, schema_version, data FROM events WHERE type = 'CheckedOut'"
        ).fetchall()
    return {stream: (version, bytes(data)) for stream, version, data in rows}


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _old_report() -> dict[str, Any]:
    report: dict[str, Any] = json.loads((FIXTURE / "old_report.json").read_text())
    return report


def _figures(row: object, names: list[str]) -> dict[str, Any]:
    values = msgspec.to_builtins(row)
    return {name: values[name] for name in names}


async def test_a_store_from_before_payments_migrates_and_reports_as_that_release(
    old_store: Path,
) -> None:
    before = _raw_checkouts(old_store)
    assert _user_version(old_store) == 1
    assert {version for version, _ in before.values()} == {1}
    assert all(b"tenders" not in data and b"tax" not in data for _, data in before.values())

    with SqliteEventStore(old_store, registry=REGISTRY) as store:
        assert _user_version(old_store) == SCHEMA_VERSION == 2  # the release before reads 1
        shop = Shop(store)
        async with shop.runtime() as runtime:
            await runtime.drain(timeout=60)
        old = _old_report()
        old_rows = {row["product_id"]: row for row in old["rows"]}
        rows = {row.product_id: row for row in shop.report.rows()}
        assert sorted(rows) == sorted(old_rows)
        for product_id, row in rows.items():
            names = sorted(set(old_rows[product_id]) - {"as_of"})
            expected = {name: old_rows[product_id][name] for name in names}
            assert _figures(row, names) == expected, product_id
            assert row.tax == 0  # sold before VAT
        totals = shop.report.totals()
        names = sorted(set(old["totals"]) - {"as_of"})
        assert _figures(totals, names) == {name: old["totals"][name] for name in names}
        assert totals.tax == 0
        # the old release's processors built the rows of the first sales (no rates then);
        # the backlog's sales, handled now, show under rate "" with no tax
        [before_vat] = totals.by_rate
        assert (before_vat.rate, before_vat.basis_points, before_vat.tax) == (BEFORE_VAT, 0, 0)

        checkouts = [
            event.decode(CheckedOut)
            for event in store.read(0, 0)
            if event.type == "CheckedOut" and event.schema_version == 2
        ]
        assert len(checkouts) == len(before) == 6
        for checkout in checkouts:
            assert (checkout.tenders, checkout.change) == (
                [PaidTender(CASH, checkout.total, handed=checkout.total)],
                0,
            )
            assert all(
                (line.tax_rate, line.basis_points, line.tax, line.net)
                == (BEFORE_VAT, 0, 0, line.line_total)
                for line in checkout.lines
            )
        cash_by_till = Counter[str]()
        for checkout in checkouts:
            cash_by_till[checkout.till_id] += checkout.total
        tills = {till.till_id: till.outside for till in shop.tills.tills()}
        assert {till: takings.cash for till, takings in tills.items()} == cash_by_till
        assert all(takings.card == takings.change == 0 for takings in tills.values())

    assert _raw_checkouts(old_store) == before  # read as v2, never rewritten


async def test_the_whole_report_of_the_old_log_is_rebuilt_under_rate_before_vat(
    old_store: Path,
) -> None:
    """The report built by today's code alone from the old log (its processors' state
    dropped, as a rebuild does) has every old sale under rate "" and its figures."""
    with sqlite3.connect(old_store) as conn:
        conn.execute("DELETE FROM checkpoints WHERE processor = 'reporting'")
        conn.execute("DELETE FROM views WHERE view LIKE 'report.%'")
    with SqliteEventStore(old_store, registry=REGISTRY) as store:
        shop = Shop(store)
        async with shop.runtime() as runtime:
            await runtime.drain(timeout=60)
        totals = shop.report.totals()
    old = _old_report()["totals"]
    assert (totals.revenue, totals.checkouts, totals.returns) == (
        old["revenue"],
        old["checkouts"],
        old["returns"],
    )
    assert totals.by_rate == [RateTotals(BEFORE_VAT, 0, old["revenue"], 0, old["revenue"])]


def test_a_store_of_a_newer_schema_is_refused_untouched(old_store: Path) -> None:
    with sqlite3.connect(old_store) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = old_store.read_bytes()
    with pytest.raises(SchemaTooNew) as caught:
        SqliteEventStore(old_store, registry=REGISTRY)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert old_store.read_bytes() == before
