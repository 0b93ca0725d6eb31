"""A PostgreSQL database of schema version 4 (before events were read with versions) holding
a checkout recorded before payments and VAT: opened by today's code it becomes version 5,
its row unchanged, and the checkout reads as version 2."""

from __future__ import annotations

from tests.integration.test_postgres_leases import query
from tests.unit.test_upcasting import V1_CHECKOUT
from tillflow.engine import NewEvent
from tillflow.engine.postgres import SCHEMA_VERSION, PostgresEventStore
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.sale.events import CheckedOut, checkout_stream
from tillflow.shop.sale.tenders import CASH, PaidTender


def test_a_version_4_database_migrates_and_reads_its_old_checkout_as_v2(
    postgres_url: str,
) -> None:
    with PostgresEventStore(postgres_url, lanes=2) as old:  # as a release before wrote it
        old.append(checkout_stream("c-1"), [NewEvent("CheckedOut", V1_CHECKOUT)])
    query(postgres_url, "UPDATE tillflow_schema SET version = 4")
    stored = query(postgres_url, "SELECT schema_version, data FROM events")

    with PostgresEventStore(postgres_url, registry=REGISTRY) as store:
        assert query(postgres_url, "SELECT version FROM tillflow_schema") == [(SCHEMA_VERSION,)]
        [recorded] = store.read_stream(checkout_stream("c-1"))
        assert recorded.schema_version == 2
        checked_out = recorded.decode(CheckedOut)
        assert checked_out.tenders == [PaidTender(CASH, 459, handed=459)]
        assert [(line.tax_rate, line.tax, line.net) for line in checked_out.lines] == [
            ("", 0, 360),
            ("", 0, 99),
        ]
    assert query(postgres_url, "SELECT schema_version, data FROM events") == stored
    assert stored[0][0] == 1 and b"tenders" not in bytes(stored[0][1])
