"""A :class:`LeaseKeeper`'s fair share per processor group, on the in-memory lease table:
each group's lanes are shared among the live workers running that group only, leases are
taken and let go per (group, lane), and a worker prefers the lanes it holds in its other
groups (co-partitioned) without ever leaving a lane untaken for that. A group whose
processor is not ``spread`` is run whole: all its lanes by one worker, the groups run whole
shared out among the workers."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import pytest

from tillflow.engine import MemoryEventStore, Processor, RecordedEvent, Session
from tillflow.engine.errors import InvalidEvent
from tillflow.engine.lane_processor import LaneProcessor
from tillflow.engine.leasing import LeaseKeeper, fair_share
from tillflow.engine.memory_leases import MemoryLeases

LANES = 16
TTL = 3.0
INV, REP, STOCK = "inventory", "reporting", "stock"
TILLS, RECEIPTS = "tills", "receipts"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ignore(event: RecordedEvent, session: Session) -> None:
    return None


class Cluster:
    """Keepers of simulated workers on one memory table, one lane processor per (group,
    lane) each, on a clock moved by hand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.table = MemoryLeases(self.clock)
        self.store = MemoryEventStore(LANES)
        self.keepers: dict[str, LeaseKeeper] = {}

    def join(
        self,
        owner: str,
        groups: Iterable[str],
        whole: Iterable[str] = (),
        weights: Mapping[str, int] | None = None,
    ) -> LeaseKeeper:
        """A worker running ``groups``, those in ``whole`` declared not ``spread``, each
        of the ``weight`` in ``weights`` (default 1)."""
        whole, weights = set(whole), weights or {}
        lanes = {
            group: [
                LaneProcessor(
                    self.store,
                    Processor(
                        group, _ignore, spread=group not in whole, weight=weights.get(group, 1)
                    ),
                    n,
                )
                for n in range(LANES)
            ]
            for group in groups
        }
        table = self.table
        keeper = LeaseKeeper(
            table,
            owner,
            lanes,
            TTL,
            lambda fence: table.fenced_commit(self.store, fence),
            weights=weights,
        )
        self.keepers[owner] = keeper
        return keeper

    def rounds(self, count: int, order: list[str] | None = None) -> None:
        """``count`` rounds of every keeper ticking (in ``order``), ``TTL / 3`` apart."""
        for _ in range(count):
            for owner in order or sorted(self.keepers):
                self.keepers[owner].tick()
            self.clock.now += TTL / 3

    def settle(self, most: int = 12) -> None:
        """Rounds until two in a row change nothing (a worker counts a newcomer only from
        the round after the newcomer's first heartbeat)."""
        quiet = 0
        for _ in range(most):
            before = self.changes()
            self.rounds(1)
            quiet = quiet + 1 if self.changes() == before else 0
            if quiet == 2:
                return
        raise AssertionError(f"no two quiet rounds in {most}: {self.describe()}")

    def changes(self) -> int:
        return sum(keeper.changes for keeper in self.keepers.values())

    def holders(self, group: str) -> dict[int, str]:
        """Lane -> the live worker whose keeper holds it in ``group``."""
        held: dict[int, str] = {}
        for owner, keeper in self.keepers.items():
            for lane in keeper.lanes_of(group):
                assert lane not in held, f"{group}@{lane}: {held[lane]} and {owner}"
                held[lane] = owner
        return held

    def describe(self) -> str:
        return "; ".join(
            f"{owner}: " + ", ".join(f"{g} {k.lanes_of(g)}" for g in k.groups)
            for owner, k in sorted(self.keepers.items())
        )


def test_disjoint_groups_each_take_all_their_lanes() -> None:
    cluster = Cluster()
    inventory, reporting = cluster.join("a", [INV]), cluster.join("b", [REP])
    cluster.settle()
    assert inventory.lanes_of(INV) == list(range(LANES)), cluster.describe()
    assert reporting.lanes_of(REP) == list(range(LANES)), cluster.describe()
    assert cluster.table.live_workers() == 2
    assert cluster.table.live_workers(INV) == cluster.table.live_workers(REP) == 1


def test_overlapping_groups_take_every_lane_and_split_the_shared_group() -> None:
    """A runs both, B Inventory only: every lane of both held; Inventory 8/8; where B holds
    an Inventory lane, A still holds that lane of the report."""
    cluster = Cluster()
    both, inventory_only = cluster.join("a", [INV, REP]), cluster.join("b", [INV])
    cluster.settle()
    assert sorted(cluster.holders(INV)) == sorted(cluster.holders(REP)) == list(range(LANES))
    assert len(both.lanes_of(INV)) == len(inventory_only.lanes_of(INV)) == LANES // 2
    assert both.lanes_of(REP) == list(range(LANES)), cluster.describe()
    for lane in inventory_only.lanes_of(INV):
        assert set(both.held[lane]) == {REP}
        assert inventory_only.held[lane].keys() == {INV}


def test_workers_running_the_same_groups_hold_the_same_lanes_of_each() -> None:
    cluster = Cluster()
    first = cluster.join("a", [INV, REP])
    cluster.settle()
    second = cluster.join("b", [INV, REP])
    cluster.settle()
    for keeper in (first, second):
        assert len(keeper.lanes_of(INV)) == LANES // 2, cluster.describe()
        assert keeper.lanes_of(INV) == keeper.lanes_of(REP), cluster.describe()
    assert first.lanes_of(INV) == list(range(LANES // 2))  # the highest handed over
    third = cluster.join("c", [INV, REP])
    cluster.settle()
    for keeper in (first, second, third):
        assert keeper.lanes_of(INV) == keeper.lanes_of(REP), cluster.describe()
    assert sorted(cluster.holders(INV)) == list(range(LANES))


def test_taking_a_group_s_lanes_prefers_those_held_in_the_other_groups() -> None:
    """Another worker holds Inventory 0..7 (its heartbeat says it runs both groups): this
    worker takes Inventory 8..15, then the same lanes of the report out of 16 free ones."""
    cluster = Cluster()
    cluster.table.heartbeat("other", 60.0, [INV, REP])
    for lane in range(LANES // 2):
        assert cluster.table.acquire(INV, lane, "other", 60.0) is not None
    keeper = cluster.join("a", [INV, REP])
    keeper.tick()
    assert keeper.lanes_of(INV) == keeper.lanes_of(REP) == list(range(LANES // 2, LANES))


def test_handing_the_surplus_over_keeps_the_lanes_held_in_the_other_groups() -> None:
    """A holds the report's every lane but Inventory 8..15 only; when a report-only worker
    joins, A keeps the report's 8..15 (its Inventory lanes), not the lowest lanes."""
    cluster = Cluster()
    inventory_only = cluster.join("b", [INV])
    cluster.settle()
    both = cluster.join("a", [INV, REP])
    cluster.settle()
    assert inventory_only.lanes_of(INV) == list(range(LANES // 2)), cluster.describe()
    assert both.lanes_of(INV) == list(range(LANES // 2, LANES)), cluster.describe()
    assert both.lanes_of(REP) == list(range(LANES)), cluster.describe()
    cluster.join("c", [REP])
    cluster.settle()
    assert both.lanes_of(REP) == list(range(LANES // 2, LANES)), cluster.describe()
    assert sorted(cluster.holders(REP)) == list(range(LANES))


def test_a_dead_worker_s_lanes_of_each_group_go_to_the_workers_running_it() -> None:
    cluster = Cluster()
    cluster.join("a", [INV, REP])
    cluster.join("b", [INV])
    cluster.join("c", [REP])
    cluster.settle()
    assert len(cluster.holders(INV)) == len(cluster.holders(REP)) == LANES
    del cluster.keepers["a"]  # killed: its leases and heartbeat expire
    cluster.rounds(4)
    cluster.settle()
    assert cluster.holders(INV) == dict.fromkeys(range(LANES), "b")
    assert cluster.holders(REP) == dict.fromkeys(range(LANES), "c")


def random_fleet(
    seed: int,
    groups: list[str],
    whole: Iterable[str] = (),
    weights: Mapping[str, int] | None = None,
) -> Cluster:
    """Workers running random sets of ``groups`` join, die and resign in random order; the
    cluster once quiet (the dead's leases and heartbeats expired)."""
    rng = random.Random(seed)
    cluster = Cluster()
    joined = 0
    for _ in range(rng.randrange(4, 12)):
        event = rng.random()
        if event < 0.5 or not cluster.keepers:
            joined += 1
            chosen = rng.sample(groups, rng.randrange(1, len(groups) + 1))
            cluster.join(f"w{joined}", chosen, whole=whole, weights=weights)
        elif event < 0.7:
            del cluster.keepers[rng.choice(sorted(cluster.keepers))]  # killed
        elif event < 0.8:
            cluster.keepers.pop(rng.choice(sorted(cluster.keepers))).resign()
        order = sorted(cluster.keepers)
        rng.shuffle(order)
        cluster.rounds(rng.randrange(1, 3), order)
    cluster.rounds(4)
    cluster.settle()
    return cluster


@pytest.mark.parametrize("seed", range(40))
def test_random_fleets_hold_every_lane_of_every_group_within_the_shares(seed: int) -> None:
    """Workers running random sets of groups join, die and resign in random order; once
    quiet, every lane of each group with a live worker running it is held by one of those
    workers, each at most its group's fair share, matching the table's leases."""
    cluster = random_fleet(seed, [INV, REP, STOCK])
    for group in (INV, REP, STOCK):
        running = sorted(owner for owner, k in cluster.keepers.items() if group in k.groups)
        holders = cluster.holders(group)
        expected = list(range(LANES)) if running else []
        assert sorted(holders) == expected, f"{group}: {cluster.describe()}"
        share = fair_share(LANES, len(running))
        for owner in running:
            held = cluster.keepers[owner].lanes_of(group)
            assert len(held) <= share, f"{owner} over the share: {cluster.describe()}"
        for lane, owner in holders.items():
            lease = cluster.table.lease(group, lane)
            assert lease is not None and lease.owner == owner
            assert cluster.table.holds(group, lane, cluster.keepers[owner].fences[(group, lane)])


def test_a_group_run_whole_has_every_lane_held_by_one_worker() -> None:
    """Inventory run whole, the stock group spread: two workers split the stock group 8/8
    but one of them holds all of Inventory, and keeps it when a third joins."""
    cluster = Cluster()
    cluster.join("a", [INV, STOCK], whole=[INV])
    cluster.join("b", [INV, STOCK], whole=[INV])
    cluster.settle()
    assert len(set(cluster.holders(INV).values())) == 1, cluster.describe()
    assert sorted(cluster.holders(INV)) == list(range(LANES))
    assert sorted(len(k.lanes_of(STOCK)) for k in cluster.keepers.values()) == [8, 8]
    owner = cluster.holders(INV)[0]
    cluster.join("c", [INV, STOCK], whole=[INV])
    cluster.settle()
    assert cluster.holders(INV) == dict.fromkeys(range(LANES), owner), cluster.describe()


def test_groups_run_whole_are_shared_out_among_the_workers() -> None:
    """Four groups run whole: the first worker takes all four, hands two over when a second
    joins, and takes them all back when that one is killed."""
    groups = [INV, REP, TILLS, RECEIPTS]
    cluster = Cluster()
    first = cluster.join("a", groups, whole=groups)
    cluster.settle()
    assert all(first.lanes_of(group) == list(range(LANES)) for group in groups)
    second = cluster.join("b", groups, whole=groups)
    cluster.settle()
    for keeper in (first, second):
        whole = [group for group in groups if keeper.lanes_of(group) == list(range(LANES))]
        assert len(whole) == 2, cluster.describe()
        assert all(not keeper.lanes_of(group) for group in groups if group not in whole)
    del cluster.keepers["b"]  # killed: its leases and heartbeat expire
    cluster.rounds(4)
    cluster.settle()
    assert all(first.lanes_of(group) == list(range(LANES)) for group in groups)


def test_heavy_groups_run_whole_go_to_different_workers() -> None:
    """Two heavy groups and two light ones, run whole: the first worker takes all four;
    when a second joins, the first hands over in its own order, the light ones first (by
    count the heavy pair would stay together), until each runs one heavy and one light
    group; then nothing moves any more."""
    light_a, light_b, heavy_c, heavy_d = "a-light", "b-light", "c-heavy", "d-heavy"
    groups = [light_a, light_b, heavy_c, heavy_d]
    weights = {heavy_c: 3, heavy_d: 3}
    cluster = Cluster()
    first = cluster.join("a", groups, whole=groups, weights=weights)
    cluster.settle()
    second = cluster.join("b", groups, whole=groups, weights=weights)
    cluster.settle()
    for keeper in (first, second):
        whole = sorted(g for g in groups if keeper.lanes_of(g) == list(range(LANES)))
        assert len(whole) == 2 and sum(weights.get(g, 1) for g in whole) == 4, cluster.describe()
        assert all(not keeper.lanes_of(group) for group in groups if group not in whole)
    changes = cluster.changes()
    cluster.rounds(6)
    assert cluster.changes() == changes, cluster.describe()


@pytest.mark.parametrize("weight", [0, -1, 1.5, True])
def test_a_weight_is_an_integer_of_at_least_one(weight: object) -> None:
    with pytest.raises(InvalidEvent, match="weight"):
        Processor("p", _ignore, weight=weight)  # type: ignore[arg-type]


def test_lanes_taken_without_the_anchor_are_let_go_to_its_holder() -> None:
    """A worker that took lanes of a group run whole but not its lane 0 (a race, or a
    worker before the group was declared whole) lets them go; the anchor's holder takes
    them."""
    cluster = Cluster()
    cluster.table.heartbeat("stale", 60.0, [INV])
    for lane in range(LANES // 2, LANES):
        assert cluster.table.acquire(INV, lane, "stale", 60.0) is not None
    keeper = cluster.join("a", [INV], whole=[INV])
    keeper.tick()
    assert keeper.lanes_of(INV) == list(range(LANES // 2)), cluster.describe()
    stale = cluster.join("stale", [INV], whole=[INV])
    stale.fences.update(
        {(INV, lane): fence for (group, lane), fence in cluster.table.renew("stale", 60.0).items()}
    )
    for lane in range(LANES // 2, LANES):
        stale._lanes[INV][lane].leased = True
    cluster.settle()
    assert cluster.holders(INV) == dict.fromkeys(range(LANES), "a"), cluster.describe()


@pytest.mark.parametrize("seed", range(20))
def test_random_fleets_run_each_whole_group_on_one_worker(seed: int) -> None:
    """Workers running random sets of groups, some run whole, join, die and resign; once
    quiet every lane of each group with a live worker is held, each group run whole by one
    worker, and no worker anchors more than its share of the groups run whole."""
    whole = [TILLS, RECEIPTS, REP]
    cluster = random_fleet(seed, [INV, REP, TILLS, RECEIPTS], whole)
    for group in (INV, *whole):
        running = sorted(owner for owner, k in cluster.keepers.items() if group in k.groups)
        holders = cluster.holders(group)
        assert sorted(holders) == (list(range(LANES)) if running else []), cluster.describe()
        if group in whole and running:
            assert len(set(holders.values())) == 1, f"{group} split: {cluster.describe()}"
    workers, anchors = cluster.table.roster()
    anchored = {owner: sum(holder == owner for holder in anchors.values()) for owner in workers}
    for group in whole:
        if group in anchors:  # its holder anchors at most one more than anyone running it
            running = [owner for owner, groups in workers.items() if group in groups]
            fewest = min(anchored[owner] for owner in running)
            assert anchored[anchors[group]] <= fewest + 1, f"{group}: {cluster.describe()}"


@pytest.mark.parametrize("seed", range(20))
def test_random_fleets_spread_heavy_whole_groups_by_weight(seed: int) -> None:
    """The same with Inventory and the report weighing 3: once quiet each group run whole is
    held whole by one worker, and no holder carries more than the group's weight above
    the least loaded worker running it (else it would hand it over)."""
    whole, weights = [INV, REP, TILLS, RECEIPTS], {INV: 3, REP: 3}
    cluster = random_fleet(seed, whole, whole, weights)
    workers, anchors = cluster.table.roster()
    load = {owner: 0 for owner in workers}
    for group, holder in anchors.items():
        load[holder] += weights.get(group, 1)
    for group in whole:
        running = [owner for owner, groups in workers.items() if group in groups]
        holders = cluster.holders(group)
        assert sorted(holders) == (list(range(LANES)) if running else []), cluster.describe()
        if running:
            holder = anchors[group]
            assert set(holders.values()) == {holder}, f"{group} split: {cluster.describe()}"
            others = [load[owner] for owner in running if owner != holder]
            assert load[holder] - min(others, default=0) <= weights.get(group, 1) or not others, (
                f"{group}: {load} {cluster.describe()}"
            )
