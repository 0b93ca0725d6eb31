"""A store that fails on purpose, for the simulator and tests: it wraps a real store and runs
a hook just before every :meth:`~EventStore.commit_batch`.

::

    processor ──reads──► FaultyStore ──delegates──► real store
                             │
                 commit_batch: hook() first ── raise SimulatedCrash        (the process died)
                                              raise SimulatedCommitFailure (the store blipped)
                                              run a command                (a write lands mid-batch)

Everything else (reads, appends, checkpoints) goes straight to the wrapped store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence

from tillflow.engine.errors import TillflowError
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    CheckpointProgress,
    CommitListener,
    EventStore,
)
from tillflow.engine.types import ANY_VERSION, NewEvent, Receipt, RecordedEvent


class SimulatedCrash(BaseException):
    """The process died at this point. A ``BaseException``, as a real crash cannot be caught
    by a handler's ``except Exception``; only the simulator catches it."""


class SimulatedCommitFailure(Exception):
    """The store refused a commit (a network blip, a lost connection): nothing was written
    and the process lives on, as the runtime's "store blipped, retrying" path."""


class FaultyStore(EventStore):
    """Delegates to ``inner``; calls ``before_commit(processor, lane, expected, new)`` before
    each :meth:`commit_batch` and commits only if the hook returns. ``commits_attempted``
    records the (expected, new) checkpoints of every attempt."""

    def __init__(
        self,
        inner: EventStore,
        before_commit: Callable[[str, int, int, int], None],
    ) -> None:
        self.inner = inner
        self.lane_count = inner.lane_count
        self.registry = inner.registry
        self.before_commit = before_commit
        self.commits_attempted: list[tuple[int, int]] = []

    def commit_batch(
        self,
        processor: str,
        lane: int,
        expected_checkpoint: int,
        new_checkpoint: int,
        effects: BatchEffects,
    ) -> Receipt:
        self.commits_attempted.append((expected_checkpoint, new_checkpoint))
        self.before_commit(processor, lane, expected_checkpoint, new_checkpoint)
        return self.inner.commit_batch(
            processor, lane, expected_checkpoint, new_checkpoint, effects
        )

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> Receipt:
        return self.inner.append(stream, events, expected_version)

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Receipt | TillflowError]:
        return self.inner.append_many(requests)

    def head(self, lane: int) -> int:
        return self.inner.head(lane)

    def heads(self) -> dict[int, int]:
        return self.inner.heads()

    def read(
        self,
        lane: int,
        after: int,
        upto: int | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return self.inner.read(lane, after, upto, types, limit)

    def read_stream(
        self, stream: str, after_version: int = 0, upto_version: int | None = None
    ) -> list[RecordedEvent]:
        return self.inner.read_stream(stream, after_version, upto_version)

    def last_event(self, stream: str) -> RecordedEvent | None:
        return self.inner.last_event(stream)

    def stream_version(self, stream: str) -> int:
        return self.inner.stream_version(stream)

    def find_by_causation(self, causation_id: bytes) -> list[RecordedEvent]:
        return self.inner.find_by_causation(causation_id)

    def emitted_by(self, processor: str, source: RecordedEvent) -> list[RecordedEvent]:
        return self.inner.emitted_by(processor, source)

    def emitted_by_many(
        self, processor: str, sources: Sequence[RecordedEvent]
    ) -> dict[bytes, list[RecordedEvent]]:
        return self.inner.emitted_by_many(processor, sources)

    def get_event(self, event_id: bytes) -> RecordedEvent | None:
        return self.inner.get_event(event_id)

    def checkpoint(self, processor: str, lane: int) -> int:
        return self.inner.checkpoint(processor, lane)

    def checkpoint_progress(self, processor: str, lane: int) -> CheckpointProgress:
        return self.inner.checkpoint_progress(processor, lane)

    def checkpoints(self) -> dict[str, dict[int, int]]:
        return self.inner.checkpoints()

    def read_view(self, view: str, key: str) -> bytes | None:
        return self.inner.read_view(view, key)

    def view_rows(self, view: str) -> Iterator[tuple[str, bytes]]:
        return self.inner.view_rows(view)

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.snapshot()

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        return self.inner.add_commit_listener(listener)

    def close(self) -> None:
        """Does not close the wrapped store (it belongs to whoever made it)."""
