"""What ``tillflow status`` says of each processor's progress on a lane, from the store
alone (wherever the processors run): caught up, behind, or stalled — behind without its
checkpoint moving for ``--stall-after`` seconds — and then what it waits on."""

from __future__ import annotations

import math
import time
from typing import Annotated

import typer

from tillflow.engine import EventStore
from tillflow.engine.stalls import DEFAULT_STALL_AFTER, barrier_holder
from tillflow.engine.statistics import lane_progress
from tillflow.shop.assembly import shop_processors

STALL_COLUMNS = ("progress", "no progress for", "waits on")


def _finite(value: float) -> float:
    if not math.isfinite(value) or value < 0.1:
        raise typer.BadParameter(f"{value}: give a number of seconds from 0.1")
    return value


StallAfterOption = Annotated[
    float,
    typer.Option(
        "--stall-after",
        envvar="TILLFLOW_STALL_AFTER",
        callback=_finite,
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
