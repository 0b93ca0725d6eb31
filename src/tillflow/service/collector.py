"""The garbage collector's setting for a process that runs tillflow's processors or API.

Python collects its youngest generation every 700 container allocations
(``gc.get_threshold()[0]``). A checkout allocates dozens of short-lived containers (rows,
events, batches, futures) in every process it passes through, so a busy shop ran a young
collection every ~20 checkouts, an older one every ~200 and a full one every few thousand:
timed with ``gc.callbacks`` at ~14,000 checkouts/s, the collector took ~11 µs of CPU per
checkout over the shop's three processes, a tenth of the total. With a threshold of 50,000
most of those objects are freed by reference counting before any collection walks them
(docs/BENCHMARKS.md: in alternating runs of 200,000 checkouts, 6-8 % more checkouts per
second and 7 % less CPU per checkout; the open loop's latency unchanged).

The setting is process-wide, so the library never changes it on its own: ``tillflow serve``
and ``tillflow worker`` apply it (``--gc-threshold``, env ``TILLFLOW_GC_THRESHOLD``; 0 leaves
Python's setting alone); a program that embeds the engine decides for itself, and may call
:func:`tune_collector`.
"""

from __future__ import annotations

import gc
from typing import Final

DEFAULT_THRESHOLD: Final = 50_000
MOST_THRESHOLD: Final = 10_000_000


def tune_collector(threshold: int = DEFAULT_THRESHOLD) -> int:
    """Collect the youngest generation every ``threshold`` container allocations (the older
    generations' thresholds stay as they are); 0 changes nothing. Returns the threshold in
    effect. Raises :class:`ValueError` naming the value unless it is an int in
    0..:data:`MOST_THRESHOLD`."""
    if type(threshold) is not int or not 0 <= threshold <= MOST_THRESHOLD:
        raise ValueError(
            f"the collector's threshold must be an integer from 0 to {MOST_THRESHOLD:,}, "
            f"got {threshold!r}"
        )
    if threshold:
        gc.set_threshold(threshold)
    return gc.get_threshold()[0]
