"""Opening a PostgreSQL store: created and versioned by the store; a lane count, schema or
database it cannot use is a typed error that writes nothing; sessions carry timeouts so a
stuck transaction cannot hold a lane's head for long."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.postgres_cluster import free_port
from tillflow.engine import NewEvent, NotATillflowDatabase, SchemaTooNew
from tillflow.engine.postgres import (
    SCHEMA_VERSION,
    DatabaseUnavailable,
    LaneCountMismatch,
    PostgresEventStore,
)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` returns (none for a statement that returns no rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def tables(url: str) -> list[str]:
    rows = query(
        url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    )
    return [str(name) for (name,) in rows]


def eventually(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_new_database_gets_16_lanes_and_keeps_them(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url) as store:
        assert store.lane_count == 16
        receipt = store.append("s", [NewEvent("Happened")])
    assert query(postgres_url, "SELECT version, lane_count FROM tillflow_schema") == [
        (SCHEMA_VERSION, 16)
    ]
    with PostgresEventStore(postgres_url) as reopened:
        assert reopened.lane_count == 16
        assert reopened.heads() == {**dict.fromkeys(range(16), 0), **receipt.positions}


def test_another_lane_count_is_refused_and_nothing_is_written(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=8) as store:
        store.append("s", [NewEvent("Happened")])
    with pytest.raises(LaneCountMismatch) as caught:
        PostgresEventStore(postgres_url, lanes=16)
    assert (caught.value.found, caught.value.requested) == (8, 16)
    assert "8 lanes" in str(caught.value)
    assert query(postgres_url, "SELECT lane_count FROM tillflow_schema") == [(8,)]
    assert query(postgres_url, "SELECT count(*) FROM lanes") == [(8,)]
    with PostgresEventStore(postgres_url) as adopted:
        assert adopted.lane_count == 8


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    PostgresEventStore(postgres_url, lanes=2).close()
    query(postgres_url, "UPDATE tillflow_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew) as caught:
        PostgresEventStore(postgres_url)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "Upgrade tillflow" in str(caught.value)


def test_a_database_of_something_else_is_refused_untouched(postgres_url: str) -> None:
    query(postgres_url, "CREATE TABLE customers (id int PRIMARY KEY)")
    with pytest.raises(NotATillflowDatabase) as caught:
        PostgresEventStore(postgres_url)
    assert "1 tables" in str(caught.value)
    assert tables(postgres_url) == ["customers"]


def test_an_unreachable_server_is_a_typed_error_without_the_password() -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/shop"
    with pytest.raises(DatabaseUnavailable) as caught:
        PostgresEventStore(url, connect_timeout=2)
    assert caught.value.database == f"postgresql://someone@127.0.0.1:{url.split(':')[3]}"
    assert "s3cret" not in str(caught.value)
    assert "refused" in str(caught.value).lower()


@pytest.mark.parametrize("lanes", [0, -1, 1025, True])
def test_an_impossible_lane_count_is_refused_before_connecting(lanes: int) -> None:
    with pytest.raises(ValueError, match="lanes must be an integer from 1 to 1024"):
        PostgresEventStore("postgresql://nobody@127.0.0.1:1/none", lanes=lanes)


def test_a_held_head_row_times_out_the_append_which_writes_nothing(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=1, lock_timeout=0.2) as store:
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT head FROM lanes WHERE lane = 0 FOR UPDATE")
            waiting = concurrent.futures.ThreadPoolExecutor(1)
            appended = waiting.submit(store.append, "s", [NewEvent("Happened")])
            try:
                error = appended.exception(timeout=20)  # without lock_timeout: still waiting
            finally:
                holder.rollback()
                waiting.shutdown()
        assert isinstance(error, DatabaseUnavailable), error
        assert "lock timeout" in str(error)
        assert store.heads() == {0: 0}
        assert store.stream_version("s") == 0
        store.append("s", [NewEvent("Happened")])  # the control: free again, it goes through
        assert store.heads() == {0: 1}


def test_an_abandoned_transaction_is_ended_by_the_server(postgres_url: str) -> None:
    def idle_in_transaction() -> int:
        [(count,)] = query(
            postgres_url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'idle in transaction'",
        )
        return int(count)

    with PostgresEventStore(postgres_url, lanes=1, idle_timeout=0.3) as store:
        with pytest.raises(DatabaseUnavailable), store.snapshot():
            store.heads()
            assert idle_in_transaction() == 1
            eventually(lambda: idle_in_transaction() == 0)
            store.heads()
        assert store.heads() == {0: 0}  # the pool replaced the lost session


def test_sessions_plan_short_statements_without_jit_or_parallel_workers(postgres_url: str) -> None:
    """A batch's lookup of thousands of id ranges is estimated dear: with JIT on, each one
    costs ~0.3 s of compiling (seconds on a busy server) for milliseconds of work."""
    store = PostgresEventStore(postgres_url)
    try:
        with store._pool.connection() as conn:
            settings = conn.execute(
                "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"
            ).fetchone()
    finally:
        store.close()
    assert settings == ("off", "0")


def _views_options(url: str) -> list[str]:
    [(options,)] = query(url, "SELECT reloptions FROM pg_class WHERE oid = 'views'::regclass")
    return list(options or [])


def test_view_rows_leave_room_on_their_pages_new_or_upgraded(postgres_url: str) -> None:
    """Version 6: the view rows' pages keep room for rewritten rows (HOT updates), in a new
    database and in one of version 5 upgraded on open, rows kept."""
    PostgresEventStore(postgres_url, lanes=2).close()
    assert _views_options(postgres_url) == ["fillfactor=70"]
    query(postgres_url, "ALTER TABLE views RESET (fillfactor)")
    query(postgres_url, "INSERT INTO views VALUES ('v', 'k', 'x')")
    query(postgres_url, "UPDATE tillflow_schema SET version = 5")
    with PostgresEventStore(postgres_url) as store:
        assert store.read_view("v", "k") == b"x"
    assert _views_options(postgres_url) == ["fillfactor=70"]
    assert query(postgres_url, "SELECT version FROM tillflow_schema") == [(SCHEMA_VERSION,)]
