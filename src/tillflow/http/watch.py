"""Following the report's progress: one task per app reads the reporting processor's
checkpoint when a commit through this store hints that it may have moved (and every
``poll`` seconds otherwise, for processors running in another process), and wakes the
live streams and the latency metric when it did.

::

    store commit ──hint──► ReportWatch.run ──checkpoint moved──► generation += 1
                                 ▲ poll                           ├─► SSE streams (changed())
                                                                  └─► on_progress(checkpoint)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from tillflow.engine import EventStore, StoreUnavailable
from tillflow.engine.versions import live_name
from tillflow.shop.reporting.projection import NAME as REPORTING

ProgressListener = Callable[[dict[int, int]], None]
AWAY_PAUSE = 1.0
"""Seconds between looks while the database is away."""


class ReportWatch:
    """The reporting checkpoint per lane, as last seen, and a generation counter that moves
    with it."""

    def __init__(
        self,
        store: EventStore,
        processor: str = REPORTING,
        poll: float = 0.25,
        on_progress: ProgressListener | None = None,
    ) -> None:
        self.store = store
        self.processor = processor
        self.poll = poll
        self.on_progress = on_progress
        self.checkpoint: dict[int, int] = {}
        self._name = processor
        self.generation = 0
        self._changed: asyncio.Condition | None = None
        self._hint: asyncio.Event | None = None
        self._hinted = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _read(self) -> dict[int, int]:
        """The checkpoints of the live version of the processor (a rebuild switches it);
        a switch moves :attr:`generation` even where both versions stand alike."""
        name = live_name(self.store, self.processor)
        if name != self._name:
            self._name = name
            self.checkpoint = {}
        return {lane: self.store.checkpoint(name, lane) for lane in range(self.store.lane_count)}

    def _on_commit(self) -> None:
        """From the writing thread: ask the watch to look (coalesced)."""
        loop, hint = self._loop, self._hint
        if loop is None or hint is None or self._hinted:
            return
        self._hinted = True
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(hint.set)

    async def look(self, off_loop: bool = False) -> bool:
        """Read the checkpoint now (``off_loop``: in a thread, as while the database is
        away); wake waiters if it moved. Returns whether it moved."""
        checkpoint = await asyncio.to_thread(self._read) if off_loop else self._read()
        if checkpoint == self.checkpoint:
            return False
        self.checkpoint = checkpoint
        self.generation += 1
        if self.on_progress is not None:
            self.on_progress(checkpoint)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        return True

    async def _run(self) -> None:
        assert self._hint is not None
        away = False
        while not self._stopping:
            self._hinted = False
            self._hint.clear()
            pause = self.poll
            try:
                await self.look(off_loop=away)
                away = False
            except StoreUnavailable:  # the database is away: look again later, off the loop
                away, pause = True, AWAY_PAUSE
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._hint.wait()

    async def changed(self, seen: int, timeout: float) -> int:
        """Wait at most ``timeout`` seconds until ``generation`` is past ``seen``; returns
        the generation then (equal to ``seen`` on timeout)."""
        if self._changed is None or self.generation > seen:
            return self.generation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.generation > seen)
        return self.generation

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReportWatch]:
        """Follow the checkpoint for the duration of the block."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._hint = asyncio.Event()
        self._stopping = False
        self.checkpoint = self._read()
        remove = self.store.add_commit_listener(self._on_commit)
        task = asyncio.create_task(self._run(), name="tillflow:report-watch")
        try:
            yield self
        finally:
            # a flag, not task.cancel(): Python 3.11's wait primitives can swallow a
            # cancellation that races with a wake-up
            remove()
            self._stopping = True
            self._hint.set()
            await task
            self._loop = None
