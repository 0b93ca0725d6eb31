"""Snapshots of a processor's progress: what the dashboard, metrics and ``status`` show."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from tillflow.engine.lane_processor import LaneProcessor, State
from tillflow.engine.stalls import (
    DEFAULT_STALL_AFTER,
    barrier_holder,
    stalled_seconds,
    stalled_state,
)
from tillflow.engine.store import EventStore


class ProcessorStatistics(msgspec.Struct, frozen=True):
    """One processor on one lane, at one moment.

    ``lag_events``: positions between the checkpoint and the head. ``lag_seconds``: age of
    the oldest event not yet scanned (0 when caught up) — a replay of old events shows its
    real distance from now only while it is behind. ``throughput``: positions scanned per
    second over the last few seconds. ``stalled_seconds``: how long the lane has been behind
    without its checkpoint moving (0 when caught up); from ``stall_after`` seconds on its
    state is ``stalled`` (:mod:`tillflow.engine.stalls`), and ``waiting_on`` names the
    upstream processor that holds its barrier, if one does.
    """

    processor: str
    lane: int
    state: str
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float
    throughput: float
    scanned: int
    handled: int
    batches: int
    last_batch: int
    waiting_on: str | None
    error: str | None
    failed_event: str | None
    failed_position: int | None
    failures: int = 0
    """Failed batches ever (handler errors and store errors), counted by this runtime."""
    stalled_seconds: float = 0.0


def offline_snapshot(lane_processor: LaneProcessor) -> ProcessorStatistics:
    """``lane_processor`` as last seen, without asking the store (it is unavailable): the
    checkpoint and head it last read, no lag in seconds."""
    checkpoint = lane_processor.known_checkpoint
    if checkpoint is None:
        checkpoint = 0
    head = max(lane_processor.head_seen, checkpoint)
    return _described(
        lane_processor, lane_processor.state, checkpoint, head, 0.0, lane_processor.waiting_on
    )


class LaneProgress(msgspec.Struct, frozen=True):
    """A processor's progress on a lane as the store tells it, wherever the processor runs."""

    checkpoint: int
    head: int
    lag_seconds: float
    stalled_seconds: float


def lane_progress(
    store: EventStore,
    processor: str,
    lane: int,
    now: float,
    running_since: float | None = None,
) -> LaneProgress:
    """Read ``processor``'s durable checkpoint on ``lane`` (and when it last moved) and the
    lane's head; the lag in seconds and the seconds behind without progress at ``now``
    (``running_since``: when this process began running the lane, if it does)."""
    progress = store.checkpoint_progress(processor, lane)
    checkpoint = progress.position
    head = store.head(lane)
    lag_seconds = 0.0
    if checkpoint < head:
        oldest = store.read(lane, checkpoint, checkpoint + 1)
        if oldest:
            lag_seconds = max(0.0, now - oldest[0].recorded_at)
    stalled_for = stalled_seconds(lag_seconds, progress.moved_at, now, running_since)
    return LaneProgress(checkpoint, head, lag_seconds, stalled_for)


def snapshot(
    lane_processor: LaneProcessor,
    stall_after: float = DEFAULT_STALL_AFTER,
    clock: Callable[[], float] = time.time,
    running_since: float | None = None,
) -> ProcessorStatistics:
    """Read the durable checkpoint (and when it last moved) and the head now and describe
    ``lane_processor``; ``stalled`` once behind without progress for ``stall_after``
    seconds by ``clock`` (Unix time), counted from ``running_since`` at the earliest (when
    the runtime started) unless the lane is run elsewhere."""
    store, lane = lane_processor.store, lane_processor.lane
    if lane_processor.state is State.ELSEWHERE:
        running_since = None
    progress = lane_progress(store, lane_processor.name, lane, clock(), running_since)
    checkpoint, head = progress.checkpoint, progress.head
    state = lane_processor.state
    waiting_on = lane_processor.waiting_on
    if state in (State.IDLE, State.WAITING) and checkpoint < head and not waiting_on:
        state = State.RUNNING
    state = stalled_state(state, progress.stalled_seconds, stall_after)
    if state is State.STALLED and waiting_on is None:
        waiting_on = barrier_holder(store, lane_processor.processor.after, lane, checkpoint)
    return _described(
        lane_processor,
        state,
        checkpoint,
        head,
        progress.lag_seconds,
        waiting_on,
        progress.stalled_seconds,
    )


def _described(
    lane_processor: LaneProcessor,
    state: State,
    checkpoint: int,
    head: int,
    lag_seconds: float,
    waiting_on: str | None,
    stalled_for: float = 0.0,
) -> ProcessorStatistics:
    failed = lane_processor.failed_event
    error = lane_processor.error
    return ProcessorStatistics(
        processor=lane_processor.name,
        lane=lane_processor.lane,
        state=state.value,
        checkpoint=checkpoint,
        head=head,
        lag_events=head - checkpoint,
        lag_seconds=lag_seconds,
        throughput=lane_processor.throughput(),
        scanned=lane_processor.scanned_total,
        handled=lane_processor.handled_total,
        batches=lane_processor.batches,
        last_batch=lane_processor.last_batch,
        waiting_on=waiting_on,
        error=None if error is None else f"{type(error).__name__}: {error}",
        failed_event=None if failed is None else failed.describe(),
        failed_position=None if failed is None else failed.position,
        failures=lane_processor.failures,
        stalled_seconds=stalled_for,
    )
