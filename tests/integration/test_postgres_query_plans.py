"""The store's batch lookups stay index lookups, whatever the planner knows of the table.

A fresh database's ``events`` table is not analyzed until autovacuum gets round to it, and
on such a table PostgreSQL once planned a processor's lookup of its upstream's effects
(``emitted_by_many``: one id range per source of the batch) as a walk of the whole table per
range: 1.3 s for a batch of 350 sources among 12,000 events, and the shop on PostgreSQL
crawled at ~60 checkouts/s. The plan is read with ``EXPLAIN``: every access to ``events``
must be an index scan bounded by the range it looks up. The same holds for a batch's view
rows: each probed by its key, never the whole views table hashed or merged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tillflow.engine import AppendRequest, NewEvent, RecordedEvent, new_event_id
from tillflow.engine.ids import derived_event_id, emitter_prefix
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.postgres.reads import _EMITTED_BY_MANY
from tillflow.engine.postgres.writer import _DELETE_VIEWS, _GUARDED, _LOCK_ROWS, _rows

SOURCES = 4_000
PAD = "x" * 600
"""Events the size of a checkout's: the planner judges the table by its pages."""
EFFECTS_EACH = 2


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _events_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in _nodes(plan) if node.get("Relation Name") == "events"]


def _bounded_by_range(scan: dict[str, Any]) -> bool:
    """An index scan of ``events`` whose condition is the looked-up range, the ``n``-th
    source's prefix (a bitmap heap scan's condition is on its bitmap index scan: its
    ``Recheck Cond``)."""
    condition = scan.get("Index Cond") or scan.get("Recheck Cond") or ""
    return all(part in condition for part in ("id >=", "id <=", "n.n * 14"))


def test_a_batch_lookup_of_effects_is_one_index_range_scan_per_source(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url, lanes=1)
    try:
        sources = [new_event_id() for _ in range(SOURCES)]
        requests = [
            AppendRequest(
                f"checkout-{number}", [NewEvent("CheckedOut", {"n": number, "pad": PAD}, id=source)]
            )
            for number, source in enumerate(sources)
        ]
        requests += [
            AppendRequest(
                f"stock-{number % 50}",
                [
                    NewEvent(
                        "ProductTaken",
                        {"n": number, "pad": PAD},
                        id=derived_event_id("inv", source, k),
                    )
                    for k in range(EFFECTS_EACH)
                ],
            )
            for number, source in enumerate(sources)
        ]
        for start in range(0, len(requests), 500):
            for outcome in store.append_many(requests[start : start + 500]):
                assert not isinstance(outcome, Exception), outcome
        batch = sources[-350:]
        prefixes = [emitter_prefix("inv", source) for source in batch]
        params = (len(prefixes), b"".join(prefixes))

        explained = store._rows("EXPLAIN (FORMAT JSON) " + _EMITTED_BY_MANY, params)
        plan = explained[0][0][0]["Plan"]  # psycopg loads the json

        scans = _events_scans(plan)
        assert scans, plan
        assert all(_bounded_by_range(scan) for scan in scans), json.dumps(plan, indent=1)
        # and the lookup finds each source's effects, and only those
        looked_up = [store.get_event(source) for source in batch[:5]]
        sources_found = [event for event in looked_up if isinstance(event, RecordedEvent)]
        found = store.emitted_by_many("inv", sources_found)
        assert [len(events) for events in found.values()] == [EFFECTS_EACH] * 5
    finally:
        store.close()


VIEW_ROWS = 3_000
"""A views table the size at which the planner, left to itself, hashed or merged all of it
for a batch of a few rows (a receipt number is a row per checkout: a shop's first day)."""


def _views_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        node
        for node in _nodes(plan)
        if node.get("Relation Name") == "views" and "Scan" in node["Node Type"]
    ]


def _probed_by_key(scan: dict[str, Any]) -> bool:
    """An index scan of ``views`` whose condition is the batch row's view and key."""
    condition = str(scan.get("Index Cond", ""))
    return "r.value ->> 0" in condition and "r.value ->> 1" in condition


LOOKUPS = {"lock": _LOCK_ROWS, "delete blind": _DELETE_VIEWS, **_GUARDED}
del LOOKUPS["insert"]  # no lookup: the primary key refuses a row that exists


@pytest.mark.parametrize("statement", sorted(LOOKUPS))
def test_a_batch_of_view_rows_probes_each_row_by_its_key(postgres_url: str, statement: str) -> None:
    store = PostgresEventStore(postgres_url, lanes=1)
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO views SELECT 'receipt_numbers', 'checkout-' || n, '\\x2a'::bytea "
                "FROM generate_series(1, %s::int) n",
                (VIEW_ROWS,),
            )
            conn.execute("ANALYZE views")
        rows = [("receipt_numbers", f"checkout-{n}", b"*", b"+") for n in range(1, 21)]
        sql = LOOKUPS[statement]

        explained = store._rows("EXPLAIN (FORMAT JSON) " + sql, (_rows(rows),))
        plan = explained[0][0][0]["Plan"]

        scans = _views_scans(plan)
        assert scans, plan
        assert all(_probed_by_key(scan) for scan in scans), json.dumps(plan, indent=1)
    finally:
        store.close()
