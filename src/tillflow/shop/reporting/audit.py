"""Checking a report against the source of truth — Inventory's own streams — at any moment.

Written independently of the projection (its own fold of Inventory's events), so a report
that tears a checkout, copies a stale level or applies a product's changes out of order is
caught, whatever design produced it. Used by the simulator after every step, by the demo at
the end, and by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tillflow.engine import EventStore, RecordedEvent
from tillflow.engine.log_tail import LastAnswer, LogTail, passed_by
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.reporting.projection import ReportViews
from tillflow.shop.reporting.rows import TOTALS_KEY, ProductRow, Totals
from tillflow.shop.reporting.sales import sales_violations


class Figures(msgspec.Struct, frozen=True):
    """A product's figures as Inventory's events say they are."""

    units_sold: int = 0
    units_returned: int = 0
    revenue: int = 0
    tax: int = 0
    received: int = 0
    count_adjustments: int = 0
    stock_left: int = 0
    open_shortfall: int = 0
    units_oversold: int = 0


class _Change(msgspec.Struct):
    stock_after: int
    short_after: int
    quantity: int = 0
    line_total: int = 0
    refund: int = 0
    tax: int = 0
    difference: int = 0
    units_short: int = 0


class _Folding:
    """Inventory's events of one product added one by one, in version order."""

    __slots__ = (
        "count_adjustments",
        "open_shortfall",
        "received",
        "revenue",
        "stock_left",
        "tax",
        "units_oversold",
        "units_returned",
        "units_sold",
    )

    def __init__(self) -> None:
        self.units_sold = self.units_returned = self.revenue = self.tax = self.received = 0
        self.count_adjustments = self.stock_left = self.open_shortfall = 0
        self.units_oversold = 0

    def add(self, event: RecordedEvent) -> None:
        change = msgspec.json.decode(event.data, type=_Change)
        if event.type == "ProductTaken":
            self.units_sold += change.quantity
            self.revenue += change.line_total
            self.tax += change.tax
        elif event.type == "ProductReturned":
            self.units_returned += change.quantity
            self.revenue -= change.refund
            self.tax -= change.tax
        elif event.type == "StockReceived":
            self.received += change.quantity
        elif event.type == "StockCounted":
            self.count_adjustments += change.difference
        elif event.type == "StockShortfall":
            self.units_oversold += change.units_short
        self.stock_left, self.open_shortfall = change.stock_after, change.short_after

    def figures(self) -> Figures:
        return Figures(
            self.units_sold,
            self.units_returned,
            self.revenue,
            self.tax,
            self.received,
            self.count_adjustments,
            self.stock_left,
            self.open_shortfall,
            self.units_oversold,
        )


def fold(events: Iterable[RecordedEvent]) -> Figures:
    """The figures after ``events`` (one product's Inventory stream, in version order)."""
    folding = _Folding()
    for event in events:
        folding.add(event)
    return folding.figures()


class StreamFolds:
    """Each product's Inventory stream folded to every version read so far, each event
    folded once (a store's recorded events never change); another store starts over."""

    def __init__(self) -> None:
        self._store: EventStore | None = None
        self._folds: dict[str, tuple[_Folding, list[Figures]]] = {}

    def at(self, store: EventStore, product_id: str, version: int) -> Figures | None:
        """The figures of ``product_id`` at ``version``; ``None`` if it has no such version."""
        if version < 0:
            return None
        if store is not self._store:
            self._store, self._folds = store, {}
        folding, by_version = self._folds.setdefault(product_id, (_Folding(), [Figures()]))
        known = len(by_version) - 1
        if version > known:
            for event in store.read_stream(stock_stream(product_id), known, version):
                folding.add(event)
                by_version.append(folding.figures())
        return by_version[version] if version < len(by_version) else None


def figures_of(row: ProductRow) -> Figures:
    return Figures(
        row.units_sold,
        row.units_returned,
        row.revenue,
        row.tax,
        row.received,
        row.count_adjustments,
        row.stock_left,
        row.open_shortfall,
        row.units_oversold,
    )


def read_rows(store: EventStore, views: ReportViews) -> list[ProductRow]:
    return decode_rows(store.view_rows(views.products))


def decode_rows(raw: Iterable[tuple[str, bytes]]) -> list[ProductRow]:
    """The report's product rows as :meth:`EventStore.view_rows` gives them, decoded."""
    decoder = msgspec.json.Decoder(ProductRow)
    return [decoder.decode(value) for _, value in raw]


def read_totals(store: EventStore, views: ReportViews) -> Totals:
    raw = store.read_view(views.totals, TOTALS_KEY)
    return Totals() if raw is None else msgspec.json.decode(raw, type=Totals)


def identity_violations(row: ProductRow) -> list[str]:
    """``received − sold + returned + count adjustments == stock left``."""
    explained = row.received - row.units_sold + row.units_returned + row.count_adjustments
    if explained != row.stock_left:
        return [
            f"{row.product_id}: received {row.received} − sold {row.units_sold} + returned "
            f"{row.units_returned} + adjustments {row.count_adjustments} = {explained}, but "
            f"stock left says {row.stock_left}"
        ]
    return []


def totals_violations(rows: list[ProductRow], totals: Totals) -> list[str]:
    """The totals are the sum of the rows (they are committed together), and their rates
    add up to them."""
    found = []
    for name in ("revenue", "tax", "units_sold", "units_returned"):
        summed = sum(getattr(row, name) for row in rows)
        if summed != getattr(totals, name):
            found.append(f"totals.{name} = {getattr(totals, name)}, rows add up to {summed}")
    return found + rate_violations(totals)


def rate_violations(totals: Totals) -> list[str]:
    """Per rate ``net + tax == revenue``; the rates' revenue and tax add up to the totals'."""
    found = [
        f"rate {entry.rate!r} at {entry.basis_points} bp: net {entry.net} + tax {entry.tax} "
        f"is not its revenue {entry.revenue}"
        for entry in totals.by_rate
        if entry.net + entry.tax != entry.revenue
    ]
    for name in ("revenue", "tax"):
        summed = sum(getattr(entry, name) for entry in totals.by_rate)
        if summed != getattr(totals, name):
            found.append(f"totals.{name} = {getattr(totals, name)}, rates add up to {summed}")
    return found


class ConsistentCutAudit:
    """Every row is Inventory's stream folded up to the version the row says (so no torn
    checkout, no stale level), the identity holds, versions never go back, totals add up,
    and so do the sales per quarter hour (when the views keep them)."""

    def __init__(self, views: ReportViews) -> None:
        self.views = views
        self.seen: dict[str, int] = {}
        self.folds = StreamFolds()
        self.last = LastAnswer()

    def __call__(self, store: EventStore) -> list[str]:
        views = self.views
        with store.snapshot():
            rows = list(store.view_rows(views.products))
            totals = store.read_view(views.totals, TOTALS_KEY)
            sales = list(store.view_rows(views.sales)) if views.sales is not None else None
            return self.last.of((store, rows, totals, sales), lambda: self._audit(store, rows))

    def _audit(self, store: EventStore, raw_rows: list[tuple[str, bytes]]) -> list[str]:
        rows = decode_rows(raw_rows)
        found: list[str] = []
        for row in rows:
            found += identity_violations(row)
            version = row.as_of.version
            truth = self.folds.at(store, row.product_id, version)
            if truth is None:
                found.append(f"{row.product_id}: as of version {version}, which does not exist")
                continue
            if figures_of(row) != truth:
                found.append(
                    f"{row.product_id}: row {figures_of(row)} is not Inventory's version "
                    f"{version}: {truth} (a torn checkout or a stale level)"
                )
            if version < self.seen.get(row.product_id, 0):
                found.append(
                    f"{row.product_id}: moved back from version "
                    f"{self.seen[row.product_id]} to {version}"
                )
            self.seen[row.product_id] = version
        totals = read_totals(store, self.views)
        if self.views.sales is not None:
            found += sales_violations(store, totals, self.views.sales)
        return found + totals_violations(rows, totals)


class IdentityAudit:
    """The properties stated for every design that claims consistent rows: the identity per
    row and totals that add up. (What the naive design must be caught breaking.)"""

    def __init__(self, views: ReportViews) -> None:
        self.views = views

    def __call__(self, store: EventStore) -> list[str]:
        with store.snapshot():
            rows = read_rows(store, self.views)
            found = [problem for row in rows for problem in identity_violations(row)]
            return found + totals_violations(rows, read_totals(store, self.views))


class EventualAudit:
    """The eventual design's promise: each half of a row is true *as of* what it says.
    The stock half is Inventory's stream folded to the row's version; the sales half is the
    sum of exactly the sales its processor has passed. ``torn`` counts the rows seen (once
    per state of the report) showing a sale whose stock effect was not in their stock yet
    (allowed here, by design)."""

    def __init__(self, views: ReportViews, processor: str) -> None:
        self.views = views
        self.processor = processor
        self.torn = 0
        self.folds = StreamFolds()
        self.passed = LogTail(("CheckedOut", "ItemsReturned"))
        self.sales: dict[str, list[int]] = {}
        """Per product (sold, returned, revenue, tax) over the sales the processor passed."""
        self.last = LastAnswer()

    def __call__(self, store: EventStore) -> list[str]:
        views = self.views
        with store.snapshot():
            upto = passed_by(store, self.processor)
            rows = list(store.view_rows(views.products))
            totals = store.read_view(views.totals, TOTALS_KEY)
            return self.last.of((store, upto, rows, totals), lambda: self._audit(store, upto, rows))

    def _audit(
        self, store: EventStore, upto: dict[int, int], raw_rows: list[tuple[str, bytes]]
    ) -> list[str]:
        found: list[str] = []
        restarted, events = self.passed.advance(store, upto)
        if restarted:
            self.sales = {}
        sales = self.sales
        for event in events:
            data = event.payload()
            for line in data["lines"]:
                figures = sales.setdefault(line["product_id"], [0, 0, 0, 0])
                if event.type == "CheckedOut":
                    figures[0] += line["quantity"]
                    figures[2] += line["line_total"]
                    figures[3] += line.get("tax", 0)
                else:
                    figures[1] += line["quantity"]
                    figures[2] -= line["refund"]
                    figures[3] -= line.get("tax", 0)
        rows = decode_rows(raw_rows)
        for row in rows:
            version = row.as_of.version
            truth = self.folds.at(store, row.product_id, version)
            if truth is None:
                found.append(f"{row.product_id}: as of version {version}, which does not exist")
                continue
            shown = figures_of(row)
            stock_half = ("received", "count_adjustments", "stock_left", "open_shortfall")
            for name in (*stock_half, "units_oversold"):
                if getattr(shown, name) != getattr(truth, name):
                    found.append(
                        f"{row.product_id}: {name} {getattr(shown, name)} is not Inventory's "
                        f"version {version}: {getattr(truth, name)}"
                    )
            sold, returned, revenue, tax = sales.get(row.product_id, [0, 0, 0, 0])
            half = (row.units_sold, row.units_returned, row.revenue, row.tax)
            if half != (sold, returned, revenue, tax):
                found.append(
                    f"{row.product_id}: sales half {half} is not what its processor passed: "
                    f"({sold}, {returned}, {revenue}, {tax})"
                )
            if row.units_sold != truth.units_sold:
                self.torn += 1
        return found + totals_violations(rows, read_totals(store, self.views))
