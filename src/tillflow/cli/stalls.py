"""What the command line says of stalls — a processor behind without its checkpoint moving
for ``--stall-after`` seconds: ``tillflow status`` per lane from the store alone (wherever
the processors run), and one line on the output of ``tillflow worker`` (or of
``tillflow serve --workers``) when a lane it runs stalls, and one when it moves again."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable
from typing import Annotated

import typer

from tillflow.engine import EventStore, ProcessorStatistics, State
from tillflow.engine.stalls import DEFAULT_STALL_AFTER, STALL_AFTER_RANGE, barrier_holder
from tillflow.engine.statistics import lane_progress
from tillflow.shop.assembly import shop_processors

STALL_COLUMNS = ("progress", "no progress for", "waits on")


def _in_range(value: float) -> float:
    least, most = STALL_AFTER_RANGE
    if not (math.isfinite(value) and least <= value <= most):
        raise typer.BadParameter(f"{value}: give a number of seconds from {least} to {most:,.0f}")
    return value


StallAfterOption = Annotated[
    float,
    typer.Option(
        "--stall-after",
        envvar="TILLFLOW_STALL_AFTER",
        callback=_in_range,
        help="Seconds behind without progress before a processor counts as stalled "
        "(env TILLFLOW_STALL_AFTER).",
    ),
]


class StallCells:
    """The :data:`STALL_COLUMNS` of every lane of a store, judged at one moment."""

    def __init__(self, store: EventStore, stall_after: float = DEFAULT_STALL_AFTER) -> None:
        self.store = store
        self.stall_after = stall_after
        self.now = time.time()
        self.after = {declared.name: declared.after for declared in shop_processors()}

    def cells(self, processor: str, lane: int) -> tuple[str, str, str]:
        """``caught up``; ``behind`` and for how long without progress; or ``STALLED``
        and the upstream processor holding its barrier, if one does."""
        progress = lane_progress(self.store, processor, lane, self.now)
        if progress.checkpoint >= progress.head:
            return ("caught up", "", "")
        seconds = f"{progress.stalled_seconds:,.1f} s"
        if progress.stalled_seconds < self.stall_after:
            return ("behind", seconds, "")
        upstream = self.after.get(processor, ())
        holder = barrier_holder(self.store, upstream, lane, progress.checkpoint)
        return ("STALLED", seconds, holder or "")


MOVING = frozenset({State.RUNNING.value, State.IDLE.value, State.WAITING.value})


class StallNotices:
    """Lines to print as lanes stall and move again, each change once."""

    def __init__(self) -> None:
        self.stalled: set[tuple[str, int]] = set()

    def lines(self, rows: Iterable[ProcessorStatistics], running: Collection[str]) -> list[str]:
        """What changed since the last call among the lanes of the processors ``running``
        here: a warning for each lane newly stalled, a line for each stalled one moving
        again (one that failed meanwhile is said by the failure)."""
        said: list[str] = []
        stalled: set[tuple[str, int]] = set()
        for row in rows:
            key = (row.processor, row.lane)
            if row.processor not in running:
                continue
            if row.state == State.STALLED.value:
                stalled.add(key)
                if key not in self.stalled:
                    waits = f", waiting on {row.waiting_on}" if row.waiting_on else ""
                    said.append(
                        f"[bold yellow]warning:[/] processor {row.processor} stalled on lane "
                        f"{row.lane}: {row.lag_events:,} events behind, no progress for "
                        f"{row.stalled_seconds:,.1f} s{waits}"
                    )
            elif key in self.stalled and row.state in MOVING:
                said.append(f"processor {row.processor} moves again on lane {row.lane}")
        self.stalled = stalled
        return said
