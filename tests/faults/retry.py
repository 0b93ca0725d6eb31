"""Calls that wait out a database restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg

from tillflow.engine.postgres import DatabaseUnavailable

UNAVAILABLE_FOR: Final = 90.0
"""Seconds a call keeps being retried while the database is away."""

T = TypeVar("T")


def retrying(action: Callable[[], T], patience: float = UNAVAILABLE_FOR) -> T:
    """``action()``, retried with backoff while the database is away."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            return action()
        except (DatabaseUnavailable, psycopg.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
