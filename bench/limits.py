"""Memory stays flat: the chain over a log of millions of events, resident memory sampled
as the log grows.

A store or processor that kept anything per event (an id in a set, an event in a list, a
dict entry per stream) would grow linearly with the log; bounded caches (SQLite's page
cache, the recent-events ring) grow only until they are full. So the check compares the
middle of the run with its end: what is still growing in the second half is per-event.
The largest bounded cache is the writer connection's page cache (the store asks for 64 MiB
per connection); it is full once the database passes that size, at about 400k events of
this workload, so the run must be well past twice that for the check to mean anything.

Two figures per sample: ``rss`` (all resident pages) and ``anonymous`` (``rss`` minus the
file-backed pages, i.e. minus the memory-mapped database file, which the kernel may drop
at will). The pass/fail figure is the anonymous growth.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil

from bench.engine import ChainRun, run_chain

MIB: Final = 1024 * 1024
GROWTH_LIMIT: Final = 32 * MIB
"""Most anonymous memory the second half of the run may add. One small Python object per
event (≥ 36 bytes) over the second half of a 3M-event run would add ≥ 54 MiB."""


@dataclass(frozen=True)
class MemorySample:
    label: str
    events: int
    """Events appended when the sample was taken."""
    rss: int
    anonymous: int


@dataclass
class MemoryRun:
    chain: ChainRun
    samples: list[MemorySample] = field(default_factory=list)

    def _at(self, label: str) -> MemorySample:
        return next(sample for sample in self.samples if sample.label == label)

    @property
    def start(self) -> MemorySample:
        return self._at("start")

    @property
    def middle(self) -> MemorySample:
        return self._at("middle")

    @property
    def end(self) -> MemorySample:
        return self._at("end")

    @property
    def growth(self) -> int:
        """Anonymous bytes added from the middle of the run to its end."""
        return self.end.anonymous - self.middle.anonymous

    @property
    def bytes_per_event(self) -> float:
        """The growth spread over the events appended in the second half."""
        return self.growth / max(self.end.events - self.middle.events, 1)

    @property
    def passed(self) -> bool:
        return self.chain.status == "ok" and self.growth <= GROWTH_LIMIT


def _sample(process: psutil.Process, label: str, events: int) -> MemorySample:
    info = process.memory_info()
    file_backed = int(getattr(info, "shared", 0))  # Linux: RssFile + RssShmem
    return MemorySample(label, events, info.rss, info.rss - file_backed)


async def memory_flat(path: Path, count: int, points: int = 10) -> MemoryRun:
    """Run the chain over ``count`` events, sampling memory before the first append
    (``start``), each time another ``1/points`` of the log has been appended (the one at
    half is ``middle``), and after the drain (``end``)."""
    process = psutil.Process()
    gc.collect()
    marks = [count * step // points for step in range(1, points + 1)]
    half = count // 2
    samples: list[MemorySample] = []

    def on_appended(total: int) -> None:
        if total == 0 and not samples:
            samples.append(_sample(process, "start", 0))
        while marks and total >= marks[0]:
            mark = marks.pop(0)
            samples.append(_sample(process, "middle" if mark == half else f"{mark}", total))

    def on_drained() -> None:
        samples.append(_sample(process, "end", count))

    if half not in marks:
        marks = sorted({*marks, half})
    chain = await run_chain(path, count, on_appended=on_appended, on_drained=on_drained)
    return MemoryRun(chain, samples)
