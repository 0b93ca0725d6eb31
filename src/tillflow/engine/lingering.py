"""Lingering: a processor's lanes that wait between the starts of their batches.

A processor on no one's hot path (the shop's receipt numbers and cash-up) otherwise steps
on every commit, a few events a batch at a steady load: each batch is a transaction of the
writer and a turn of the interpreter that the processors on the report's path wait behind.
With ``Processor.linger`` seconds, a lane starts a batch at most once per ``linger`` — the
events that arrived meanwhile come in one — unless someone needs it now: a
:meth:`~tillflow.engine.Runtime.wait_for` naming the processor (or one downstream of it),
a drain and a stop hurry its lanes, which then step at once. A backlog is not slowed
much: each batch then takes up to ``batch_size`` events.

A wait in another process cannot hurry this one's lanes: there the processor answers up to
``linger`` seconds later than it would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class Lingering:
    """The hurry signals of one runtime's lingering lanes, by processor name."""

    def __init__(self) -> None:
        self._lanes: dict[str, list[asyncio.Event]] = {}

    def lane(self, name: str) -> asyncio.Event:
        """A new lane of processor ``name``: its hurry signal."""
        hurry = asyncio.Event()
        self._lanes.setdefault(name, []).append(hurry)
        return hurry

    def hurry(self, names: Iterable[str]) -> None:
        """Have the lanes of ``names`` start their next batch now (event loop thread)."""
        for name in names:
            for hurry in self._lanes.get(name, ()):
                hurry.set()

    def hurry_all(self) -> None:
        """Hurry every lingering lane (a drain, a stop)."""
        self.hurry(list(self._lanes))

    def clear(self) -> None:
        """Forget the lanes (the runtime let go of its tasks)."""
        self._lanes.clear()


async def linger(hurry: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` (none if not positive) unless ``hurry`` is or becomes set; then
    clear it: a hurry that came while the batch after it ran is kept for the next."""
    if seconds > 0 and not hurry.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await hurry.wait()
    hurry.clear()
