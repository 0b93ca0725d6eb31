"""Stalls, judged with an injected clock (no sleeps): a lane behind whose checkpoint has not
moved for ``stall_after`` seconds is ``stalled``; it is ``running`` again once it moves; a
lane caught up is never stalled, however long it idles; a failed one stays ``failed``; one
held at its barrier by a stuck upstream says which."""

from __future__ import annotations

import time

import pytest

from tillflow.engine import (
    HandlerFailed,
    LaneProcessor,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
    State,
)
from tillflow.engine.stalls import (
    DEFAULT_STALL_AFTER,
    barrier_holder,
    stalled_seconds,
    stalled_state,
)
from tillflow.engine.statistics import ProcessorStatistics, snapshot
from tillflow.service.bootstrap import ConfigurationError
from tillflow.service.settings import load_settings

STALL_AFTER = 30.0


def ignore(event: RecordedEvent, session: Session) -> None:
    pass


def refuse(event: RecordedEvent, session: Session) -> None:
    raise ValueError(f"cannot handle {event.type}")


def at(lane: LaneProcessor, now: float) -> ProcessorStatistics:
    """``lane`` described as if the clock said ``now``."""
    return snapshot(lane, STALL_AFTER, clock=lambda: now)


def catch_up(lane: LaneProcessor) -> None:
    """Step ``lane`` until a step finds nothing to do (it is then idle)."""
    while lane.step().progressed:
        pass


def append(store: MemoryEventStore, count: int) -> float:
    """Append ``count`` events; the time just after."""
    store.append("s", [NewEvent("Happened", {"n": n}) for n in range(count)])
    return time.time()


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


def test_stalled_seconds_count_from_the_later_of_the_last_move_and_the_oldest_event() -> None:
    assert stalled_seconds(0.0, moved_at=None, now=1_000.0) == 0.0  # caught up
    assert stalled_seconds(0.0, moved_at=10.0, now=1_000.0) == 0.0
    assert stalled_seconds(40.0, moved_at=None, now=1_000.0) == 40.0  # never moved
    assert stalled_seconds(40.0, moved_at=990.0, now=1_000.0) == 10.0  # moved since
    assert stalled_seconds(5.0, moved_at=10.0, now=1_000.0) == 5.0  # idle, then an event
    assert stalled_seconds(5.0, moved_at=1_001.0, now=1_000.0) == 0.0  # clocks apart


def test_a_lane_run_here_counts_from_when_the_runtime_started_it() -> None:
    assert stalled_seconds(3_600.0, None, now=1_000.0, running_since=995.0) == 5.0
    assert stalled_seconds(3_600.0, 100.0, now=1_000.0, running_since=995.0) == 5.0
    assert stalled_seconds(3_600.0, 990.0, now=1_000.0, running_since=900.0) == 10.0


def test_a_processor_just_started_over_an_old_backlog_is_not_stalled_yet(
    store: MemoryEventStore,
) -> None:
    """Events an hour old, never handled: the lane started here 5 s ago is running; one
    run elsewhere is judged from the store alone."""
    lane = LaneProcessor(store, Processor("p", ignore), 0)
    lane.state = State.RUNNING
    appended = append(store, 1)
    late = appended + 3_600
    started = snapshot(lane, STALL_AFTER, clock=lambda: late, running_since=late - 5)
    assert started.state == "running"
    assert started.stalled_seconds == pytest.approx(5.0)
    assert snapshot(lane, STALL_AFTER, clock=lambda: late, running_since=late - 31).state == (
        "stalled"
    )
    lane.state = State.ELSEWHERE
    elsewhere = snapshot(lane, STALL_AFTER, clock=lambda: late, running_since=late - 5)
    assert elsewhere.state == "stalled"


@pytest.mark.parametrize("state", [State.RUNNING, State.WAITING, State.ELSEWHERE])
def test_a_lane_that_claims_to_move_is_stalled_from_the_threshold_on(state: State) -> None:
    assert stalled_state(state, STALL_AFTER - 0.1, STALL_AFTER) is state
    assert stalled_state(state, STALL_AFTER, STALL_AFTER) is State.STALLED


@pytest.mark.parametrize("state", [State.FAILED, State.RETRYING, State.DEGRADED, State.STOPPED])
def test_a_lane_whose_state_says_why_it_does_not_move_keeps_it(state: State) -> None:
    assert stalled_state(state, 3_600.0, STALL_AFTER) is state


def test_behind_without_progress_is_stalled_and_running_again_once_it_moves(
    store: MemoryEventStore,
) -> None:
    lane = LaneProcessor(store, Processor("p", ignore, batch_size=1), 0)
    appended = append(store, 2)
    assert at(lane, appended + STALL_AFTER + 1).state == "stalled"
    lane.step()  # one of the two
    moved = time.time()
    assert at(lane, moved + STALL_AFTER - 5).state == "running"
    row = at(lane, moved + STALL_AFTER + 1)
    assert (row.state, row.lag_events) == ("stalled", 1)
    assert row.stalled_seconds == pytest.approx(STALL_AFTER + 1, abs=1.0)
    catch_up(lane)
    assert at(lane, time.time() + 5).state == "idle"


def test_a_lane_caught_up_is_never_stalled_however_long_it_idles(
    store: MemoryEventStore,
) -> None:
    lane = LaneProcessor(store, Processor("p", ignore), 0)
    append(store, 3)
    catch_up(lane)
    row = at(lane, time.time() + 86_400)
    assert (row.state, row.lag_events, row.stalled_seconds) == ("idle", 0, 0.0)


def test_an_event_after_a_long_idle_starts_the_clock_afresh(store: MemoryEventStore) -> None:
    """The checkpoint last moved long ago, but the lane has been behind only since the new
    event: not stalled until ``stall_after`` past that event."""
    lane = LaneProcessor(store, Processor("p", ignore), 0)
    append(store, 1)
    catch_up(lane)
    appended = append(store, 1)
    assert at(lane, appended + STALL_AFTER - 5).state == "running"
    assert at(lane, appended + STALL_AFTER + 1).state == "stalled"


def test_a_failed_lane_stays_failed(store: MemoryEventStore) -> None:
    lane = LaneProcessor(store, Processor("p", refuse), 0)
    appended = append(store, 1)
    with pytest.raises(HandlerFailed):
        lane.step()
    lane.state = State.FAILED  # as the runtime's stop-on-failure policy sets it
    row = at(lane, appended + 3_600)
    assert row.state == "failed"
    assert row.stalled_seconds >= 3_600


def test_a_lane_held_by_a_stuck_upstream_says_what_it_waits_on(
    store: MemoryEventStore,
) -> None:
    upstream = LaneProcessor(store, Processor("upstream", ignore), 0)
    here = LaneProcessor(store, Processor("downstream", ignore, after=("upstream",)), 0)
    append(store, 1)
    upstream.step()
    here.step()
    appended = append(store, 2)  # the upstream takes no step: stuck
    here.step()
    assert (here.state, here.waiting_on) == (State.WAITING, "upstream")
    late = appended + STALL_AFTER + 1
    assert (at(upstream, late).state, at(upstream, late).waiting_on) == ("stalled", None)
    row = at(here, late)
    assert (row.state, row.waiting_on) == ("stalled", "upstream")


def test_a_lane_run_elsewhere_is_judged_from_the_store_alone(store: MemoryEventStore) -> None:
    """Another process runs it: the checkpoints and times in the store say it is stalled
    and which upstream holds it."""
    elsewhere = LaneProcessor(store, Processor("downstream", ignore, after=("upstream",)), 0)
    elsewhere.state = State.ELSEWHERE
    append(store, 1)
    LaneProcessor(store, Processor("upstream", ignore), 0).step()
    LaneProcessor(store, Processor("downstream", ignore, after=("upstream",)), 0).step()
    appended = append(store, 1)
    row = at(elsewhere, appended + STALL_AFTER + 1)
    assert (row.state, row.waiting_on, row.lag_events) == ("stalled", "upstream", 1)
    assert at(elsewhere, appended + 1).state == "elsewhere"


def test_the_barrier_holder_is_the_upstream_furthest_behind(store: MemoryEventStore) -> None:
    append(store, 3)
    LaneProcessor(store, Processor("a", ignore, batch_size=2), 0).step()  # at 2
    LaneProcessor(store, Processor("b", ignore, batch_size=1), 0).step()  # at 1
    assert barrier_holder(store, ["a", "b"], 0, checkpoint=1) == "b"
    assert barrier_holder(store, ["a", "b"], 0, checkpoint=2) == "b"
    assert barrier_holder(store, ["a"], 0, checkpoint=1) is None  # a is past it
    assert barrier_holder(store, [], 0, checkpoint=0) is None


def test_the_threshold_is_a_setting_and_a_bad_one_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().stall_after == DEFAULT_STALL_AFTER
    monkeypatch.setenv("TILLFLOW_STALL_AFTER", "2.5")
    assert load_settings().stall_after == 2.5
    assert load_settings(stall_after=4.0).stall_after == 4.0  # an option wins
    monkeypatch.setenv("TILLFLOW_STALL_AFTER", "0")
    with pytest.raises(ConfigurationError, match=r"^TILLFLOW_STALL_AFTER: "):
        load_settings()
    with pytest.raises(ConfigurationError, match=r"^--stall-after: "):
        load_settings(stall_after=float("nan"))
