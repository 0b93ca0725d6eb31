"""How a process that answers requests while its threads work is tuned for latency
(``tillflow serve``).

Python hands the interpreter lock from thread to thread every 5 ms by default, so an event
loop waiting for it behind the writer and the processor threads can wait that long at each
turn; a full collection of everything the process loaded walks it all (measured 15–27 ms).
Shorter slices, and what is loaded before serving frozen out of the collector, take both
stalls out of the tail.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import Final

SWITCH_INTERVAL: Final = 0.001
"""Seconds a thread runs before the interpreter offers the lock to another."""


@contextlib.contextmanager
def tuned_for_latency() -> Iterator[None]:
    """Within the block: :data:`SWITCH_INTERVAL` and everything allocated so far frozen out
    of the collector; afterwards the process's switch interval back and the collector's
    permanent generation unfrozen (with whatever was frozen before)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)
