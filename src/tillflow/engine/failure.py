"""What a processor does when its handler fails: the place for retry and parking policies.

A policy sees the failure and how many times this event has failed in a row, and answers
with a delay before the next attempt, or ``None`` to stop the processor (state ``failed``,
checkpoint just before the event). Parking (dead-lettering) plugs in here later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tillflow.engine.errors import HandlerFailed


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
