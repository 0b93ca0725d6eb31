"""The store going away: how a runtime waits it out, and how it says so.

A :class:`~tillflow.engine.errors.StoreUnavailable` (a database restarting, a connection
lost) is not a handler failure: nothing of the batch was written, the checkpoint stays
where it was, and the handler's retry budget is untouched. The runtime (and a lease
keeper) retry with :class:`OutageBackoff` and report to one :class:`StoreHealth`, which
is ``degraded`` while any of them is failing and logs one line when that starts and one
when it ends, never one per retry.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import msgspec

log = logging.getLogger("tillflow.outage")

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with any password of a database URL or connection string replaced by
    ``***``."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


def describe_error(error: BaseException) -> str:
    """``Type: message``, password-free."""
    return redact(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class OutageBackoff:
    """Delays between tries while the store is away: ``first`` × ``factor``ⁿ, at most
    ``most`` seconds, each spread by ± ``jitter`` (a fraction) so that many lanes and
    workers do not knock all at once."""

    first: float = 0.05
    factor: float = 2.0
    most: float = 5.0
    jitter: float = 0.2

    def delay(self, retries: int) -> float:
        """The pause before try number ``retries + 1`` (``retries`` ≥ 0 failed so far)."""
        base = self.first * self.factor ** min(max(retries, 0), 64)
        spread = 1.0 + self.jitter * (2.0 * random.random() - 1.0)
        return float(min(self.most, base * spread))


class StoreStatus(msgspec.Struct, frozen=True):
    """The store as a runtime sees it, now. ``state``: ``ok`` or ``degraded`` (some lane
    or the lease keeper cannot reach it). ``since``: when the current outage began (Unix
    time; ``None`` when ok). ``seconds``: how long it has lasted. ``last_error``: the
    latest store error (password-free). ``retries``: store errors waited out, ever;
    ``outages``: outages begun, ever."""

    state: str
    since: float | None
    seconds: float
    last_error: str | None
    retries: int
    outages: int


class StoreHealth:
    """Who is failing to reach the store right now (lane processors, the lease keeper):
    degraded while anyone is. Used from one event loop."""

    def __init__(self, name: str = "processors", on_back: Callable[[], None] | None = None) -> None:
        """``on_back``: called whenever one that was failing reaches the store again."""
        self.name = name
        self.on_back = on_back
        self.retries = 0
        self.outages = 0
        self.last_error: str | None = None
        self._failing: set[Hashable] = set()
        self._since: float | None = None
        self._since_monotonic = 0.0

    @property
    def degraded(self) -> bool:
        return bool(self._failing)

    def failing(self, who: Hashable) -> bool:
        """Whether ``who`` is failing to reach the store now."""
        return who in self._failing

    def failed(self, who: Hashable, error: BaseException) -> None:
        """``who`` could not reach the store (one retry more)."""
        self.retries += 1
        self.last_error = describe_error(error)
        if not self._failing:
            self.outages += 1
            self._since = time.time()
            self._since_monotonic = time.monotonic()
            log.warning(
                "%s: database unavailable (%s); retrying with backoff", self.name, self.last_error
            )
        self._failing.add(who)

    def recovered(self, who: Hashable) -> None:
        """``who`` reached the store again (or no longer needs it)."""
        if who not in self._failing:
            return
        lasted = self.seconds()
        self._failing.discard(who)
        if not self._failing:
            log.warning(
                "%s: database back after %.1f s; resumed (%d retries so far)",
                self.name,
                lasted,
                self.retries,
            )
            self._since = None
        if self.on_back is not None:  # the others need not wait out their backoff
            self.on_back()

    def seconds(self) -> float:
        """How long the current outage has lasted (0 when ok)."""
        return time.monotonic() - self._since_monotonic if self._failing else 0.0

    def status(self) -> StoreStatus:
        return StoreStatus(
            state="degraded" if self._failing else "ok",
            since=self._since if self._failing else None,
            seconds=self.seconds(),
            last_error=self.last_error,
            retries=self.retries,
            outages=self.outages,
        )
