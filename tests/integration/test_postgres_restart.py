"""A PostgreSQL server that goes away and comes back: requests meanwhile fail with
:class:`DatabaseUnavailable` and write nothing; once it is back the same store object
works again (the pool replaces its dead connections) and every acknowledged write is there.
Its own cluster, since it kills the server."""

from __future__ import annotations

import time

import pytest

from tests.postgres_cluster import running_cluster
from tillflow.engine import NO_STREAM, BatchEffects, NewEvent, Receipt
from tillflow.engine.postgres import DatabaseUnavailable, PostgresEventStore


def test_a_store_survives_a_server_crash_and_restart() -> None:
    with running_cluster() as cluster:
        url = cluster.create_database()
        with PostgresEventStore(url, lanes=4, connect_timeout=2, pool_timeout=2) as store:
            acknowledged: list[Receipt] = [
                store.append(f"before-{n}", [NewEvent("Happened")], NO_STREAM) for n in range(20)
            ]
            store.commit_batch("p", 0, 0, 1, BatchEffects(views={("v", "k"): b"1"}))
            cluster.stop("immediate")  # a crash: no shutdown checkpoint
            with pytest.raises(DatabaseUnavailable):
                store.append("during", [NewEvent("Happened")], NO_STREAM)
            with pytest.raises(DatabaseUnavailable):
                store.heads()
            cluster.start()
            deadline = time.monotonic() + 30
            while True:
                try:
                    acknowledged.append(store.append("after", [NewEvent("Happened")], NO_STREAM))
                    break
                except DatabaseUnavailable:
                    assert time.monotonic() < deadline, "the store never came back"
                    time.sleep(0.05)
            for receipt in acknowledged:
                [(stream, version)] = receipt.streams.items()
                assert store.stream_version(stream) == version
                [(lane, position)] = receipt.positions.items()
                assert [e.stream for e in store.read(lane, position - 1, position)] == [stream]
            assert store.stream_version("during") == 0
            assert sum(store.heads().values()) == 21
            assert store.checkpoint("p", 0) == 1
            assert store.read_view("v", "k") == b"1"
