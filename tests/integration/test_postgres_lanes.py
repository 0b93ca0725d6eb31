"""Lanes on PostgreSQL stay dense in commit order while many appenders write and some of
their transactions roll back, so a reader following a lane never passes a position that
becomes visible later. The negative control writes positions from a sequence (what most
PostgreSQL event stores do) and the same follower must catch it."""

from __future__ import annotations

import concurrent.futures
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tillflow.engine import (
    NO_STREAM,
    BatchEffects,
    ConcurrencyConflict,
    Emitted,
    EventStore,
    NewEvent,
)
from tillflow.engine.lanes import lane_of
from tillflow.engine.postgres import PostgresEventStore

LANES = 16
APPENDERS = 24
APPENDS_EACH = 40
ROLLERS = 4
ROLLBACKS_EACH = 60
"""About 20 % of the transactions that move a head roll back."""


@dataclass
class Follower:
    """Follows every lane from position 0, as a processor would: reads everything after
    what it has passed. Records every event it saw; :meth:`late` and :meth:`gaps` judge."""

    read: Callable[[int, int], list[tuple[int, bytes]]]
    passed: dict[int, int] = field(default_factory=dict)
    seen: dict[int, dict[int, bytes]] = field(default_factory=dict)
    reads: int = 0

    def step(self) -> None:
        for lane in range(LANES):
            after = self.passed.get(lane, 0)
            for position, event_id in self.read(lane, after):
                self.seen.setdefault(lane, {})[position] = event_id
                self.passed[lane] = max(self.passed.get(lane, 0), position)
            self.reads += 1

    def late(self, final: dict[int, dict[int, bytes]]) -> list[str]:
        """Events at or below a position the follower passed that it never saw."""
        return [
            f"lane {lane}: position {position} became visible after the follower passed "
            f"{self.passed.get(lane, 0)}"
            for lane, events in final.items()
            for position in events
            if position <= self.passed.get(lane, 0) and position not in self.seen.get(lane, {})
        ]


def gaps(final: dict[int, dict[int, bytes]], heads: dict[int, int] | None) -> list[str]:
    """Lanes whose positions are not exactly 1..n (and n the head, when heads are kept)."""
    found = []
    for lane in range(LANES):
        positions = sorted(final.get(lane, {}))
        if positions != list(range(1, len(positions) + 1)):
            found.append(f"lane {lane}: positions not dense ({len(positions)} events)")
        if heads is not None and heads.get(lane, 0) != len(positions):
            found.append(f"lane {lane}: head {heads.get(lane)} but {len(positions)} events")
    return found


def positions_of(store: EventStore) -> Callable[[int, int], list[tuple[int, bytes]]]:
    """What the follower reads: ``store.read``, as a processor does."""

    def read(lane: int, after: int) -> list[tuple[int, bytes]]:
        return [(event.position, event.id) for event in store.read(lane, after)]

    return read


def everything(url: str) -> dict[int, dict[int, bytes]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT lane, position, id FROM events").fetchall()
    final: dict[int, dict[int, bytes]] = {}
    for lane, position, event_id in rows:
        final.setdefault(int(lane), {})[int(position)] = bytes(event_id)
    return final


def follow_while(store: EventStore, writers: list[threading.Thread]) -> Follower:
    """Follow every lane until ``writers`` (started here) are done, then once more."""
    follower = Follower(positions_of(store))
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        follower.step()
    for writer in writers:
        writer.join()
    follower.step()
    return follower


def rolled_back_head_moves(url: str, seed: int) -> None:
    """Transactions that take positions the way the store does (lock and move the head
    row), insert rows, hold them a little and then roll back, or die with their session."""
    rng = random.Random(seed)
    with psycopg.connect(url, autocommit=True) as conn:
        for number in range(ROLLBACKS_EACH):
            lane = rng.randrange(LANES)
            count = rng.randint(1, 3)
            with conn.transaction(force_rollback=True):
                [(head,)] = conn.execute(
                    "UPDATE lanes SET head = head + %s WHERE lane = %s RETURNING head",
                    (count, lane),
                ).fetchall()
                for position in range(head - count + 1, head + 1):
                    conn.execute(
                        "INSERT INTO events (lane, position, id, stream, version, type, "
                        "schema_version, data, recorded_at) "
                        "VALUES (%s, %s, %s, %s, 1, 'Doomed', 1, '\\x6e756c6c', 0)",
                        (lane, position, rng.randbytes(16), f"doomed-{seed}-{number}-{position}"),
                    )
                time.sleep(rng.random() * 0.01)


def store_appends(store: EventStore, seed: int, outcomes: list[str]) -> None:
    """Appends through the store; some expect a new stream that exists (their fast-path
    transaction moves the head, fails at the insert and rolls back) and some processor
    batches conflict after locking their lanes (rolled back too)."""
    rng = random.Random(seed)
    for number in range(APPENDS_EACH):
        stream = f"s-{seed}-{number}"
        events = [NewEvent("Happened", {"n": n}) for n in range(rng.randint(1, 3))]
        choice = rng.random()
        try:
            if choice < 0.1:
                store.append(f"s-{seed}-0", events, NO_STREAM)  # exists: rolled back
            elif choice < 0.2:
                emitted = [Emitted(f"e-{seed}-{number}-{k}", events) for k in range(3)]
                emitted.append(Emitted(f"s-{seed}-0", events, expected_version=99))
                store.commit_batch(f"p-{seed}-{number}", 0, 0, 1, BatchEffects(emitted))
            else:
                store.append(stream, events, NO_STREAM)
            outcomes.append("ok")
        except ConcurrencyConflict:
            outcomes.append("refused")


def test_lanes_stay_dense_while_a_fifth_of_transactions_roll_back(postgres_url: str) -> None:
    outcomes: list[str] = []
    with PostgresEventStore(postgres_url, lanes=LANES) as store:
        store.append("s-0-0", [NewEvent("Happened")])  # streams "s-N-0" exist for the traps
        for seed in range(1, APPENDERS):
            store.append(f"s-{seed}-0", [NewEvent("Happened")])
        writers = [
            threading.Thread(target=store_appends, args=(store, seed, outcomes))
            for seed in range(APPENDERS)
        ]
        writers += [
            threading.Thread(target=rolled_back_head_moves, args=(postgres_url, 1000 + seed))
            for seed in range(ROLLERS)
        ]
        follower = follow_while(store, writers)
        heads = store.heads()
    final = everything(postgres_url)
    assert follower.late(final) == []
    assert gaps(final, heads) == []
    assert follower.seen == final
    refused = outcomes.count("refused")
    assert 0.1 * len(outcomes) < refused < 0.3 * len(outcomes), outcomes.count("ok")
    assert follower.reads > LANES * 10


def sequence_writer(url: str, seed: int) -> None:
    """The negative control: positions from a sequence, taken at the start of the
    transaction, committed (or rolled back) after a random delay."""
    rng = random.Random(seed)
    with psycopg.connect(url, autocommit=True) as conn:
        for number in range(APPENDS_EACH):
            lane = rng.randrange(LANES)
            with conn.transaction(force_rollback=rng.random() < 0.2):
                [(position,)] = conn.execute(f"SELECT nextval('lane_{lane}')").fetchall()
                conn.execute(
                    "INSERT INTO events (lane, position, id, stream, version, type, "
                    "schema_version, data, recorded_at) "
                    "VALUES (%s, %s, %s, %s, 1, 'Raced', 1, '\\x6e756c6c', 0)",
                    (lane, position, rng.randbytes(16), f"raced-{seed}-{number}"),
                )
                time.sleep(rng.random() * 0.01)


def test_the_follower_catches_positions_taken_from_a_sequence(postgres_url: str) -> None:
    with PostgresEventStore(postgres_url, lanes=LANES) as store:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for lane in range(LANES):
                conn.execute(f"CREATE SEQUENCE lane_{lane}")
        writers = [
            threading.Thread(target=sequence_writer, args=(postgres_url, seed))
            for seed in range(APPENDERS)
        ]
        follower = follow_while(store, writers)
    final = everything(postgres_url)
    assert follower.late(final), "a sequence writer's late commits went unnoticed"
    assert gaps(final, None), "a sequence writer's rollbacks left no gap"


def stream_on(lane: int, prefix: str) -> str:
    """A stream name whose lane is ``lane``."""
    return next(
        f"{prefix}-{n}" for n in itertools.count() if lane_of(f"{prefix}-{n}", LANES) == lane
    )


def test_a_batch_locks_its_lanes_in_ascending_order(postgres_url: str) -> None:
    """A processor batch emitting to lanes 9 and 2 (in that order) while another session
    holds lane 2: it must wait for lane 2 *before* taking lane 9, else two batches taking
    the same lanes in other orders deadlock."""
    low, high = stream_on(2, "low"), stream_on(9, "high")
    with PostgresEventStore(postgres_url, lanes=LANES) as store:
        with psycopg.connect(postgres_url) as holder, psycopg.connect(postgres_url) as prober:
            holder.execute("SELECT head FROM lanes WHERE lane = 2 FOR UPDATE")
            effects = BatchEffects(
                [Emitted(high, [NewEvent("Derived")]), Emitted(low, [NewEvent("Derived")])]
            )
            waiting = concurrent.futures.ThreadPoolExecutor(1)
            committed = waiting.submit(store.commit_batch, "p", 0, 0, 1, effects)
            try:
                eventually_waiting_on_a_lock(prober)
                prober.execute("SET lock_timeout = '100ms'")
                prober.execute("SELECT head FROM lanes WHERE lane = 9 FOR UPDATE")  # free
                prober.rollback()
            finally:
                holder.rollback()
                waiting.shutdown()
        receipt = committed.result(timeout=20)
        assert receipt.positions == {2: 1, 9: 1}


def eventually_waiting_on_a_lock(conn: psycopg.Connection[Any]) -> None:
    deadline = time.monotonic() + 20
    while True:
        [(waiting,)] = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchall()
        conn.rollback()
        if waiting:
            return
        assert time.monotonic() < deadline, "the batch never waited for lane 2"
        time.sleep(0.01)
