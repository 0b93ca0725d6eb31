"""Reading the report: rows and totals as committed, optionally after waiting for a receipt
(read-your-writes), always saying how fresh they are."""

from __future__ import annotations

import time

import msgspec

from tillflow.engine import EventStore, Receipt, Runtime, WaitOutcome
from tillflow.engine.versions import live_version, versioned
from tillflow.shop.reporting.projection import NAME
from tillflow.shop.reporting.rows import PRODUCTS_VIEW, TOTALS_KEY, TOTALS_VIEW, ProductRow, Totals


class Freshness(msgspec.Struct, frozen=True):
    """How far the report (or another processor) is behind the log when read: per lane,
    its checkpoint, the head, and the age in seconds of the oldest event it has not yet
    passed."""

    checkpoint: dict[int, int]
    head: dict[int, int]
    lag_events: int
    lag_seconds: float
    waited: str | None = None
    """With ``wait_for``: ``reached``, ``timed_out`` or ``failed``."""


class Report(msgspec.Struct, frozen=True):
    rows: list[ProductRow]
    totals: Totals
    freshness: Freshness
    version: int = 1
    """The version of the report read (a blue/green rebuild makes a new one): part of
    what the figures are as of."""


def freshness_of(store: EventStore, processor: str, waited: WaitOutcome | None) -> Freshness:
    """How far ``processor`` is behind ``store``'s log now (``waited``: how a wait ended)."""
    checkpoints = {lane: store.checkpoint(processor, lane) for lane in range(store.lane_count)}
    heads = store.heads()
    lag_seconds = 0.0
    for lane, checkpoint in checkpoints.items():
        if checkpoint < heads[lane]:
            oldest = store.read(lane, checkpoint, checkpoint + 1)
            if oldest:
                lag_seconds = max(lag_seconds, time.time() - oldest[0].recorded_at)
    return Freshness(
        checkpoints,
        heads,
        sum(heads[lane] - checkpoints[lane] for lane in heads),
        lag_seconds,
        None if waited is None else waited.status,
    )


class ReportReader:
    """Reads the committed report from a store: the live version of it (each read asks
    which is live, so a rebuild's switch is seen at once)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def version(self) -> int:
        """The live version of the report."""
        return live_version(self.store, NAME)

    def rows(self, version: int | None = None) -> list[ProductRow]:
        """Every product row, by product id."""
        view = versioned(PRODUCTS_VIEW, self.version() if version is None else version)
        decoder = msgspec.json.Decoder(ProductRow)
        return [decoder.decode(raw) for _, raw in self.store.view_rows(view)]

    def row(self, product_id: str) -> ProductRow | None:
        raw = self.store.read_view(versioned(PRODUCTS_VIEW, self.version()), product_id)
        return None if raw is None else msgspec.json.decode(raw, type=ProductRow)

    def totals(self, version: int | None = None) -> Totals:
        view = versioned(TOTALS_VIEW, self.version() if version is None else version)
        raw = self.store.read_view(view, TOTALS_KEY)
        return Totals() if raw is None else msgspec.json.decode(raw, type=Totals)

    def freshness(self, waited: WaitOutcome | None = None, version: int | None = None) -> Freshness:
        name = versioned(NAME, self.version() if version is None else version)
        return freshness_of(self.store, name, waited)

    def report(self, waited: WaitOutcome | None = None) -> Report:
        """Rows, totals and freshness of the live version, read in one snapshot: they
        agree with each other."""
        with self.store.snapshot():
            version = self.version()
            return Report(
                self.rows(version),
                self.totals(version),
                self.freshness(waited, version),
                version,
            )

    async def read(
        self, runtime: Runtime, wait_for: Receipt | None = None, timeout: float = 5.0
    ) -> Report:
        """The report; with ``wait_for``, first wait (at most ``timeout`` s) until the report
        has passed that receipt. Never raises for lateness: ``freshness.waited`` says."""
        waited = None
        if wait_for is not None:
            waited = await runtime.wait_for(wait_for, [NAME], timeout)
        return self.report(waited)
