"""Property-based tests (hypothesis) for ordering, idempotency and barriers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.barrier_scenario import ACTIONS, random_actions, run_scenario
from tillflow.engine import (
    ANY_VERSION,
    ConcurrencyConflict,
    EventStore,
    MemoryEventStore,
    NewEvent,
    Receipt,
    SqliteEventStore,
    id_from_key,
)

appends = st.lists(
    st.tuples(st.integers(0, 5), st.integers(1, 4), st.booleans()), min_size=1, max_size=40
)


def _check_ordering(store: EventStore, plan: list[tuple[int, int, bool]]) -> None:
    expected_versions: dict[str, int] = {}
    last_position: dict[int, int] = {}
    for stream_number, count, guarded in plan:
        stream = f"s-{stream_number}"
        current = expected_versions.get(stream, 0)
        expected = current if guarded else ANY_VERSION
        receipt = store.append(stream, [NewEvent("E", {"i": i}) for i in range(count)], expected)
        assert receipt.streams == {stream: current + count}
        [(lane, position)] = receipt.positions.items()
        assert position == last_position.get(lane, 0) + count  # dense, in commit order
        last_position[lane] = position
        expected_versions[stream] = current + count
    for lane in range(store.lane_count):
        events = list(store.iter_all(lane, batch=7))
        assert [e.position for e in events] == list(range(1, store.head(lane) + 1))
    for stream, version in expected_versions.items():
        assert [e.version for e in store.read_stream(stream)] == list(range(1, version + 1))


@given(plan=appends, lanes=st.integers(1, 4))
def test_memory_positions_are_dense_and_stream_versions_ordered(
    plan: list[tuple[int, int, bool]], lanes: int
) -> None:
    _check_ordering(MemoryEventStore(lane_count=lanes), plan)


@settings(max_examples=25, deadline=None)
@given(plan=appends)
def test_sqlite_positions_are_dense_and_stream_versions_ordered(
    plan: list[tuple[int, int, bool]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteEventStore(Path(directory) / "e.db", durability="off")
        try:
            _check_ordering(store, plan)
        finally:
            store.close()


@given(
    batches=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=12),
    repeats=st.lists(st.integers(0, 11), max_size=20),
)
def test_repeating_an_append_returns_its_original_receipt_and_records_nothing(
    batches: list[tuple[int, int]], repeats: list[int]
) -> None:
    store = MemoryEventStore(lane_count=2)
    done: list[tuple[str, list[NewEvent], Receipt]] = []
    for number, (stream_number, count) in enumerate(batches):
        stream = f"s-{stream_number}"
        events = [
            NewEvent("E", {"b": number, "i": i}, id=id_from_key("b", f"{number}.{i}"))
            for i in range(count)
        ]
        done.append((stream, events, store.append(stream, events)))
    total = sum(store.head(lane) for lane in range(2))
    for index in repeats:
        stream, events, original = done[index % len(done)]
        assert store.append(stream, events) == original
        try:
            assert store.append(stream, events, expected_version=0) == original
        except ConcurrencyConflict:  # pragma: no cover - must not happen for a repeat
            raise AssertionError("a repeat was treated as a conflict") from None
    assert sum(store.head(lane) for lane in range(2)) == total


scenario_actions = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 999)), min_size=1, max_size=80
)


@settings(max_examples=300)
@given(actions=scenario_actions, lanes=st.integers(1, 3))
def test_dependent_never_handles_an_event_before_its_upstream(
    actions: list[tuple[str, int]], lanes: int
) -> None:
    outcome = run_scenario(actions, lane_count=lanes, barrier=True)
    assert outcome.violations == []


def test_negative_control_without_the_barrier_the_same_scenario_breaks() -> None:
    """The check above can fail: remove the barrier and random schedules expose the race."""
    broken = [
        seed for seed in range(100) if run_scenario(random_actions(seed), barrier=False).violations
    ]
    assert broken, "no schedule broke the invariant without the barrier: the check proves nothing"
    assert all(not run_scenario(random_actions(seed), barrier=True).violations for seed in broken)


def test_barrier_holds_on_a_real_sqlite_file_under_random_schedules(tmp_path: Path) -> None:
    handled = 0
    for seed in range(30):
        store = SqliteEventStore(tmp_path / f"seed-{seed}.db", durability="off")
        try:
            outcome = run_scenario(random_actions(seed, length=80), store=store)
        finally:
            store.close()
        assert outcome.violations == [], f"seed {seed}"
        handled += outcome.handled_down
    assert handled > 100  # the schedules did exercise the dependent
