"""What operators see of leases on PostgreSQL: a refused fenced batch is counted (in a
transaction of its own, after the rollback), a takeover moves the lease changes, and
``/metrics`` and ``GET /processors`` show the workers, their lanes and the lanes nobody
holds, all read from the database; on SQLite none of it appears."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.servers import Api
from tests.integration.test_postgres_lease_keeper import GROUPS, shop_groups
from tillflow.cli.leased import lease_keeper
from tillflow.engine import BatchEffects, CheckpointConflict, EventStore, SqliteEventStore
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.postgres import (
    SCHEMA_VERSION,
    DatabaseUnavailable,
    LeaseLost,
    PostgresEventStore,
)
from tillflow.engine.postgres.leases import LeaseOverview
from tillflow.http import create_app
from tillflow.http.metrics import Metrics
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop, shop_processors

LANES = 4
LONG = 30.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(postgres_url, lanes=LANES, registry=service_registry())
    try:
        yield opened
    finally:
        opened.close()


@asynccontextmanager
async def serving_status(store: EventStore) -> AsyncIterator[Api]:
    """The app on ``store`` without processors of its own (``tillflow serve
    --no-processors``): what it shows of leases comes from the database only."""
    book = TokenBook(store)
    tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
    app = create_app(store=store, run_processors=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield Api(client, store, tokens, app)


async def scrape(api: Api) -> Samples:
    """Every sample of ``/metrics`` by name and labels, each exactly once."""
    answer = await api.get("/metrics")
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def named(samples: Samples, prefix: str) -> Samples:
    return {key: v for key, v in samples.items() if key[0].startswith(prefix)}


def fenced_count(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT processor, lane, refused FROM fenced_commits ORDER BY 1, 2")


def test_a_refused_fenced_batch_is_counted_and_writes_nothing_else(
    store: PostgresEventStore, postgres_url: str
) -> None:
    first = store.leases.acquire("inventory", 1, "a", LONG)
    assert first == Fence("a", 1)
    store.commit_batch("inventory", 1, 0, 0, BatchEffects(), fence=first)  # held: no count
    with pytest.raises(CheckpointConflict):  # a stale checkpoint is not a fenced batch
        store.commit_batch("inventory", 1, 5, 6, BatchEffects(), fence=first)
    assert fenced_count(postgres_url) == []
    store.leases.resign("a")
    assert store.leases.acquire("inventory", 1, "b", LONG) == Fence("b", 2)
    effects = BatchEffects(views={("v", "k"): b"x"})
    for _ in range(2):
        with pytest.raises(LeaseLost):
            store.commit_batch("inventory", 1, 0, 0, effects, fence=first)
    assert fenced_count(postgres_url) == [("inventory", 1, 2)]
    assert store.read_view("v", "k") is None and store.checkpoint("inventory", 1) == 0


def test_a_lease_taken_over_after_expiry_refuses_the_old_holder_and_counts_it(
    store: PostgresEventStore, postgres_url: str
) -> None:
    old = store.leases.acquire("reporting", 0, "a", 0.2)
    assert old is not None
    taken = wait_for(lambda: store.leases.acquire("reporting", 0, "b", LONG))
    assert taken == Fence("b", 2)
    with pytest.raises(LeaseLost):
        store.commit_batch("reporting", 0, 0, 0, BatchEffects(), fence=old)
    assert fenced_count(postgres_url) == [("reporting", 0, 1)]


def wait_for(attempt: Callable[[], Fence | None], timeout: float = 15.0) -> Fence:
    deadline = time.monotonic() + timeout
    while (found := attempt()) is None:
        assert time.monotonic() < deadline, "the lease did not expire in time"
        time.sleep(0.02)
    return found


def keeper(store: PostgresEventStore) -> LeaseKeeper:
    found = lease_keeper(store, Shop(store, processors=shop_groups()).runtime(), LONG)
    assert found is not None
    return found


async def test_metrics_count_lease_changes_fenced_batches_and_lanes_per_worker(
    store: PostgresEventStore,
) -> None:
    async with serving_status(store) as api:
        assert named(await scrape(api), "tillflow_lease") == {}  # no lease taken yet
        assert value(await scrape(api), "tillflow_workers_live") == 0
        first, second = keeper(store), keeper(store)
        first.tick()  # alone: all four lanes of both groups
        before = await scrape(api)
        for group in ("inventory", "reporting"):
            for lane in range(LANES):
                labels = {"processor": group, "lane": str(lane)}
                assert value(before, "tillflow_lease_changes_total", **labels) == 1
                assert value(before, "tillflow_fenced_commits_total", **labels) == 0
                assert 0 < value(before, "tillflow_lease_expires_in_seconds", **labels) <= LONG
            assert value(before, "tillflow_worker_lanes", worker=first.owner, processor=group) == 4
        second.tick()
        first.tick()  # hands two lanes over
        second.tick()  # takes them: a takeover
        after = await scrape(api)
        moved = sorted(second.held)
        assert len(moved) == 2
        assert value(after, "tillflow_workers_live") == 2
        for group in ("inventory", "reporting"):
            for lane in range(LANES):
                labels = {"processor": group, "lane": str(lane)}
                changes = 2 if lane in moved else 1
                assert value(after, "tillflow_lease_changes_total", **labels) == changes
            for worker in (first.owner, second.owner):
                assert value(after, "tillflow_worker_lanes", worker=worker, processor=group) == 2
        # the first worker's fence on a lane it handed over is refused, and counted
        lane = moved[0]
        stale = Fence(first.owner, 1)
        with pytest.raises(LeaseLost):
            store.commit_batch("inventory", lane, 0, 0, BatchEffects(), fence=stale)
        fenced = await scrape(api)
        labels = {"processor": "inventory", "lane": str(lane)}
        assert value(fenced, "tillflow_fenced_commits_total", **labels) == 1
        assert sum(named(fenced, "tillflow_fenced_commits_total").values()) == 1
        second.resign()
        resigned = await scrape(api)
        assert value(resigned, "tillflow_workers_live") == 1
        assert value(resigned, "tillflow_lease_expires_in_seconds", **labels) <= 0


async def test_processors_show_the_workers_their_lanes_and_the_lanes_nobody_holds(
    store: PostgresEventStore,
) -> None:
    gone = store.leases.acquire("legacy", 0, "gone", 0.2)  # its worker died: it expires
    assert gone is not None
    wait_for(lambda: None if store.leases.rows()[0].held else gone)
    async with serving_status(store) as api:
        first, second = keeper(store), keeper(store)
        first.tick()
        second.tick()
        first.tick()  # two lanes each would be fair; the second has taken none yet
        status = (await api.get("/processors")).json()
        assert status["leased"] is True
        unheld = sorted(set(range(LANES)) - set(first.held))
        assert status["unheld"] == {  # the shop's other processors run nowhere here
            processor.name: unheld if processor.name in GROUPS else list(range(LANES))
            for processor in shop_processors()
        }
        workers = {worker["worker"]: worker for worker in status["workers"]}
        assert set(workers) == {first.owner, second.owner}
        mine = sorted(first.held)
        assert workers[first.owner]["lanes"] == {"inventory": mine, "reporting": mine}
        assert 0 < workers[first.owner]["lease_expires_in"] <= LONG
        assert workers[second.owner] == {
            "worker": second.owner,
            "lanes": {},
            "lease_expires_in": None,
        }
        second.tick()
        status = (await api.get("/processors")).json()
        assert status["unheld"].keys().isdisjoint(GROUPS)
        rows = {(row["processor"], row["lane"]): row for row in status["processors"]}
        for lane in second.held:
            assert rows[("reporting", lane)]["owner"] == second.owner
            assert rows[("reporting", lane)]["fenced_commits"] == 0
            assert rows[("reporting", lane)]["checkpoint"] == 0  # no processor ran
            assert rows[("reporting", lane)]["lag_events"] == status["heads"][str(lane)]


async def test_on_sqlite_no_lease_figures_appear(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "shop.db", registry=service_registry()) as store:
        async with serving_status(store) as api:
            status = (await api.get("/processors")).json()
            assert (status["leased"], status["workers"], status["unheld"]) == (False, [], {})
            assert all(row["fenced_commits"] is None for row in status["processors"])
            samples = await scrape(api)
            assert "tillflow_processor_checkpoint" in {name for name, _ in samples}
            assert named(samples, "tillflow_lease") == {}
            assert named(samples, "tillflow_worker") == {}
            assert named(samples, "tillflow_fenced") == {}


def test_a_version_2_schema_gains_the_fenced_count_when_opened(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=2) as store:
        assert isinstance(store, PostgresEventStore)
        store.leases.acquire("g", 0, "a", LONG)
    query(postgres_url, "DROP TABLE fenced_commits")
    query(postgres_url, "UPDATE tillflow_schema SET version = 2")
    with PostgresEventStore(postgres_url) as reopened:
        assert isinstance(reopened, PostgresEventStore)
        [lease] = reopened.leases.rows()  # kept
        assert (lease.owner, lease.epoch) == ("a", 1)
        with pytest.raises(LeaseLost):
            reopened.commit_batch("g", 0, 0, 0, BatchEffects(), fence=Fence("z", 1))
    assert query(postgres_url, "SELECT version FROM tillflow_schema") == [(SCHEMA_VERSION,)]
    assert fenced_count(postgres_url) == [("g", 0, 1)]


def test_a_database_that_cannot_answer_leaves_the_lease_figures_out() -> None:
    def unavailable() -> LeaseOverview | None:
        raise DatabaseUnavailable("postgresql://db/shop", "connection refused")

    metrics = Metrics()
    metrics.leases = unavailable
    text = metrics.render().decode()
    assert "tillflow_http_request_duration_seconds" in text
    assert "tillflow_lease" not in text and "tillflow_workers_live" not in text
