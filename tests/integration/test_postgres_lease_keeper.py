"""The worker side of leases, in one process: fair shares handed over between keepers,
batches committed under the keeper's fence, lanes not held never stepped, and view rows
that span lanes guarded when two workers share a group's lanes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from tests.e2e.servers import Api
from tillflow.cli import app
from tillflow.cli.leased import lease_keeper
from tillflow.engine import BatchEffects, MemoryEventStore, NewEvent, Processor, State
from tillflow.engine.leasing import Fence, LeaseKeeper
from tillflow.engine.postgres import LeaseLost, PostgresEventStore
from tillflow.engine.postgres.errors import ViewRowChanged
from tillflow.engine.runtime import Runtime
from tillflow.http import create_app
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import REGISTRY, Shop, shop_processors

LANES = 4
TTL = 30.0
GROUPS = ("inventory", "reporting")


def shop_groups() -> list[Processor]:
    """The shop's processors of :data:`GROUPS`, spread (their lanes split among workers):
    these tests look at lanes changing hands and at rows that span lanes, which a group run
    whole goes through only while it changes hands."""
    return [
        dataclasses.replace(processor, spread=True)
        for processor in shop_processors()
        if processor.name in GROUPS
    ]


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(postgres_url, lanes=LANES, registry=REGISTRY)
    try:
        yield opened
    finally:
        opened.close()


def keeper(store: PostgresEventStore, run: list[str] | None = None) -> tuple[LeaseKeeper, Runtime]:
    """A keeper of a runtime of the shop's Inventory and report (the groups these tests
    look at) running ``run`` (default: both)."""
    runtime = Shop(store, processors=shop_groups()).runtime(run)
    found = lease_keeper(store, runtime, TTL)
    assert found is not None
    return found, runtime


def leased(runtime: Runtime) -> dict[str, list[int]]:
    return {name: [lp.lane for lp in lanes if lp.leased] for name, lanes in runtime.lanes.items()}


def test_keepers_share_the_lanes_and_hand_the_surplus_over(store: PostgresEventStore) -> None:
    first, first_runtime = keeper(store)
    second, second_runtime = keeper(store)
    first.tick()  # alone: every lane, of both groups (co-partitioned)
    assert sorted(first.held) == list(range(LANES))
    assert leased(first_runtime) == {"inventory": [0, 1, 2, 3], "reporting": [0, 1, 2, 3]}
    assert leased(second_runtime) == {"inventory": [], "reporting": []}
    second.tick()  # two live workers now: a share of 2, none free yet
    assert second.held == {}
    first.tick()  # hands its surplus over
    assert len(first.held) == 2
    second.tick()
    assert sorted([*first.held, *second.held]) == list(range(LANES))
    assert set(leased(second_runtime)["reporting"]) == set(second.held)
    assert set(leased(first_runtime)["inventory"]).isdisjoint(leased(second_runtime)["inventory"])
    second.resign()  # SIGTERM
    assert leased(second_runtime) == {"inventory": [], "reporting": []}
    first.tick()
    assert sorted(first.held) == list(range(LANES))


def test_workers_running_different_groups_share_each_group_among_its_own(
    store: PostgresEventStore,
) -> None:
    """One worker runs both groups, one Inventory only, one the report only: each group's
    lanes are split between its two workers, every lane of both held."""
    both, both_runtime = keeper(store)
    inventory, inventory_runtime = keeper(store, ["inventory"])
    reporting, reporting_runtime = keeper(store, ["reporting"])
    for _ in range(3):
        for each in (both, inventory, reporting):
            each.tick()
    assert store.leases.live_workers() == 3
    assert store.leases.live_workers("inventory") == store.leases.live_workers("reporting") == 2
    held = {
        group: sorted(lane for runtime in runtimes for lane in leased(runtime).get(group, []))
        for group, runtimes in (
            ("inventory", (both_runtime, inventory_runtime)),
            ("reporting", (both_runtime, reporting_runtime)),
        )
    }
    assert held == {"inventory": list(range(LANES)), "reporting": list(range(LANES))}
    assert len(inventory.lanes_of("inventory")) == len(reporting.lanes_of("reporting")) == 2
    assert both.lanes_of("inventory") == both.lanes_of("reporting")  # co-partitioned
    rows = {(row.processor, row.lane): row.owner for row in store.leases.rows() if row.held}
    assert len(rows) == 2 * LANES


def test_a_batch_commits_under_the_keepers_fence(store: PostgresEventStore) -> None:
    only, runtime = keeper(store)
    only.tick()
    lane_processor = runtime.lanes["inventory"][1]
    assert lane_processor.commit_batch is not None
    lane_processor.commit_batch("inventory", 1, 0, 0, BatchEffects())  # held: commits
    only.resign()
    with pytest.raises(LeaseLost):
        lane_processor.commit_batch("inventory", 1, 0, 0, BatchEffects())


def test_a_lane_not_held_is_never_stepped_until_granted() -> None:
    store = MemoryEventStore(lane_count=2)

    async def run() -> None:
        shop = Shop(store)
        async with shop.runtime() as runtime:
            lanes = [lp for each in runtime.lanes.values() for lp in each]
            for lane_processor in lanes:
                lane_processor.leased = False
            receipt = await runtime.append("s", [NewEvent("Noise")])
            async with asyncio.timeout(15):
                while any(lp.state is not State.ELSEWHERE for lp in lanes):
                    await asyncio.sleep(0.01)
            assert all(store.checkpoint(lp.name, lp.lane) == 0 for lp in lanes)
            for lane_processor in lanes:
                lane_processor.leased = True
            assert await runtime.wait_for(receipt, timeout=15)

    asyncio.run(run())


def test_a_view_row_changed_since_the_batch_read_it_is_refused(
    store: PostgresEventStore,
) -> None:
    """Two workers' batches on different lanes both read a total, then commit: the second
    is rolled back instead of overwriting the first's update."""
    store.commit_batch("g", 0, 0, 1, BatchEffects(views={("v", "total"): b"1"}))
    read: dict[tuple[str, str], bytes | None] = {("v", "total"): b"1"}
    store.commit_batch("g", 1, 0, 1, BatchEffects(views={("v", "total"): b"2"}, read=read))
    with pytest.raises(ViewRowChanged) as caught:
        store.commit_batch("g", 2, 0, 1, BatchEffects(views={("v", "total"): b"2"}, read=read))
    assert "'v'/'total'" in str(caught.value)
    assert store.checkpoint("g", 2) == 0
    absent: dict[tuple[str, str], bytes | None] = {("v", "new"): None}
    store.commit_batch("g", 3, 0, 1, BatchEffects(views={("v", "new"): b"a"}, read=absent))
    with pytest.raises(ViewRowChanged):  # both saw it absent: the later insert loses
        store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "new"): b"b"}, read=absent))
    with pytest.raises(ViewRowChanged):  # read only, changed since: refused too
        store.commit_batch("g", 0, 1, 2, BatchEffects(views={("v", "x"): b"x"}, read=read))
    assert dict(store.view_rows("v")) == {"total": b"2", "new": b"a"}


def test_status_shows_each_lanes_owner_epoch_and_expiry(
    store: PostgresEventStore, postgres_url: str
) -> None:
    store.commit_batch("inventory", 0, 0, 0, BatchEffects())
    store.commit_batch("inventory", 1, 0, 0, BatchEffects())
    store.commit_batch("inventory", 2, 0, 0, BatchEffects())
    assert store.leases.acquire("inventory", 0, "host:1:ab", TTL) == Fence("host:1:ab", 1)
    assert store.leases.acquire("inventory", 1, "host:2:cd", TTL) is not None
    store.leases.resign("host:2:cd")
    result = CliRunner().invoke(app, ["status", "--database", postgres_url], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "inventory" in line and "│" in line]
    lines = {line.split("│")[2].strip(): line for line in rows}
    assert "host:1:ab" in lines["0"] and "expires in" in lines["0"]
    assert "resigned" in lines["1"]
    assert "unleased" in lines["2"]


async def test_get_processors_shows_each_lanes_lease(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=LANES, registry=service_registry()) as store:
        assert isinstance(store, PostgresEventStore)
        book = TokenBook(store)
        tokens = {role: book.create(f"{role.value}-1", role)[0] for role in Role}
        app = create_app(store=store)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://tillflow.test"
            ) as client,
        ):
            assert store.leases.acquire("reporting", 2, "host:9:ef", TTL) == Fence("host:9:ef", 1)
            answer = await Api(client, store, tokens, app).get("/processors")
            assert answer.status_code == 200, answer.text
            rows = {(r["processor"], r["lane"]): r for r in answer.json()["processors"]}
            held = rows[("reporting", 2)]
            assert (held["owner"], held["epoch"]) == ("host:9:ef", 1)
            assert 0 < held["lease_expires_in"] <= TTL
            assert rows[("inventory", 2)]["owner"] is None


async def test_a_joining_worker_and_a_resignation_are_acted_on_at_once(
    store: PostgresEventStore,
) -> None:
    """Rounds are ``TTL / 3`` = 10 s apart: only the hints (a worker joining, leases let
    go) can make the hand-overs below happen within 5 s."""
    first, _ = keeper(store)
    second, _ = keeper(store)
    first_stop, second_stop = asyncio.Event(), asyncio.Event()

    async def within(condition: Callable[[], bool], seconds: float = 5.0) -> float:
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < seconds, "no hand-over before the next round"
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    first_keeping = asyncio.create_task(first.keep(first_stop))
    await within(lambda: sorted(first.held) == list(range(LANES)))
    second_keeping = asyncio.create_task(second.keep(second_stop))
    await within(lambda: len(first.held) == len(second.held) == LANES // 2)  # joined
    second_stop.set()
    await second_keeping
    await asyncio.to_thread(second.resign)  # SIGTERM
    await within(lambda: sorted(first.held) == list(range(LANES)))
    first_stop.set()
    await first_keeping
