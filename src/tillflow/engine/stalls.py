"""Stalls: a processor that is behind on a lane and has not moved for a while.

A lane is *stalled* once it has had events to scan (lag > 0) and its durable checkpoint
has not moved for ``stall_after`` seconds: a handler blocked on an event, a worker that
hangs, nobody running the processor, or a barrier whose upstream is itself stuck. It is
judged from two times the store already keeps, so nothing is added per event: when the
checkpoint last moved (:meth:`EventStore.checkpoint_progress`) and when the oldest event
not yet scanned was recorded (the lag in seconds). Whichever is later starts the clock:
a lane caught up for an hour that gets an event now is not stalled an hour. A lane
caught up is never stalled, however long it is idle; it is ``running`` again at its
next commit. States that already say why a lane is not moving (failed, retrying,
degraded, stopped) stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from tillflow.engine.lane_processor import State
from tillflow.engine.store import EventStore

DEFAULT_STALL_AFTER: Final = 30.0
"""Seconds behind without progress before a lane is ``stalled``."""
STALL_AFTER_RANGE: Final = (0.1, 86_400.0)
"""The thresholds a setting may give, in seconds."""

MAY_STALL: Final = frozenset(
    {State.STARTING, State.RUNNING, State.WAITING, State.IDLE, State.ELSEWHERE}
)
"""States that claim a lane moves (or may: run elsewhere); a stall overrides them."""


def stalled_seconds(
    lag_seconds: float, moved_at: float | None, now: float, running_since: float | None = None
) -> float:
    """How long a lane has been behind without its checkpoint moving: since the latest of
    its last move (``moved_at``, Unix time; ``None``: never), the arrival of the oldest
    event it has not scanned (``lag_seconds`` ago) and, for a lane this process runs, when
    it began running it (``running_since``: a processor just started over a backlog is not
    stalled before its first batch). 0 when caught up (``lag_seconds`` 0)."""
    if lag_seconds <= 0.0:
        return 0.0
    seconds = lag_seconds
    for start in (moved_at, running_since):
        if start is not None:
            seconds = min(seconds, now - start)
    return max(0.0, seconds)


def stalled_state(state: State, seconds: float, stall_after: float) -> State:
    """``state``, or :attr:`State.STALLED` when the lane has been behind without progress
    (``seconds``, see :func:`stalled_seconds`) for ``stall_after`` seconds or more and its
    state claims it moves (:data:`MAY_STALL`)."""
    if seconds >= stall_after and state in MAY_STALL:
        return State.STALLED
    return state


def barrier_holder(
    store: EventStore, after: Iterable[str], lane: int, checkpoint: int
) -> str | None:
    """The upstream processor whose durable checkpoint on ``lane`` holds this one at
    ``checkpoint`` (the furthest behind of those not past it), or ``None`` if none does:
    what a stalled lane waits on, read from the store wherever the processors run."""
    holder: str | None = None
    lowest = checkpoint
    for upstream in after:
        position = store.checkpoint(upstream, lane)
        if position <= lowest:
            holder, lowest = upstream, position
    return holder
