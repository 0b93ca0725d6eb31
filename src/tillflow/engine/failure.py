"""What a processor does when its handler fails: the place for retry and parking policies.

A policy sees the failure and how many times this event has failed in a row, and answers
with a delay before the next attempt, or ``None`` to stop the processor (state ``failed``,
checkpoint just before the event). A processor that declares :class:`Parking` is not
stopped: past its retries the event is parked with its key (:mod:`tillflow.engine.parking`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tillflow.engine.errors import HandlerFailed, InvalidEvent
from tillflow.engine.types import RecordedEvent


class FailurePolicy(Protocol):
    def retry_after(self, failure: HandlerFailed, attempts: int) -> float | None:
        """Seconds to wait before handling the event again, or ``None`` to stop."""
        ...


@dataclass(frozen=True)
class StopOnFailure:
    """Stop at the first failure: loud, nothing skipped. The default."""

    def retry_after(self, failure: HandlerFailed, attempts: int) -> float | None:
        return None


@dataclass(frozen=True)
class RetryWithBackoff:
    """Retry ``max_attempts`` times with exponential backoff (``base`` × 2ⁿ, at most
    ``cap`` seconds), then stop."""

    max_attempts: int = 5
    base: float = 0.05
    cap: float = 5.0

    def retry_after(self, failure: HandlerFailed, attempts: int) -> float | None:
        if attempts >= self.max_attempts:
            return None
        return float(min(self.cap, self.base * (2 ** (attempts - 1))))


def stream_key(event: RecordedEvent) -> str:
    """The default parking key: the event's stream."""
    return event.stream


@dataclass(frozen=True, kw_only=True)
class Parking:
    """A processor's failure policy that keeps per-key order: ``max_attempts`` attempts
    with exponential backoff (``base`` × 2ⁿ, at most ``cap`` seconds, each delay cut by up
    to ``jitter`` of itself at random), then the event is parked with its error, and every
    later event of the same ``key`` is held behind it while other keys flow on."""

    key: Callable[[RecordedEvent], str] = stream_key
    max_attempts: int = 5
    base: float = 0.05
    cap: float = 5.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidEvent("max_attempts", self.max_attempts, "must be ≥ 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise InvalidEvent("jitter", self.jitter, "must be from 0 to 1")
        if self.base < 0 or self.cap < 0:
            raise InvalidEvent("base", (self.base, self.cap), "delays must be ≥ 0")

    def retry_after(self, attempts: int) -> float | None:
        """Seconds before attempt ``attempts + 1``, or ``None``: park the event."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.cap, self.base * (2 ** (attempts - 1)))
        return float(delay * (1.0 - self.jitter * self.rng.random()))
