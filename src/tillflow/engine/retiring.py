"""Retiring a processor whose work another processor took over.

A processor is retired by moving its checkpoint on a lane to :data:`RETIRED_AT`, with a
compare-and-set like any batch's commit (``EventStore.commit_batch``), in the same
transaction as whatever the successor needs to carry on. A worker still running the old
processor (an older release during a rolling upgrade) is then refused its batch under way
(``CheckpointConflict``: nothing written), reads its checkpoint again and finds nothing
after it, ever: it can no longer write what the successor now owns.
"""

from __future__ import annotations

from typing import Final

RETIRED_AT: Final = 2**62
"""The checkpoint of a retired processor: past any position a log will reach."""


def is_retired(position: int) -> bool:
    """Whether a checkpoint at ``position`` is a retired processor's."""
    return position >= RETIRED_AT
