"""The cash-up checked against the log, computed here on its own (not with the processor's
arithmetic): what a checker uses after every step of a simulated run.

Consistent cut: at the ``tills`` processor's checkpoint, per till and per session, the
figures equal the sale's events up to that checkpoint folded from scratch — takings by
tender (cash kept = cash handed − the checkout's change), refunds by tender, sales, returns
and declined cards — the session's ``takings`` and ``late`` together; its float and count
are its ``TillOpened`` and ``TillClosed``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

import msgspec

from tillflow.engine import EventStore, RecordedEvent
from tillflow.engine.log_tail import LastAnswer, LogTail, passed_by
from tillflow.shop.sale.events import CardDeclined, CheckedOut, ItemsReturned, checkout_stream
from tillflow.shop.sale.tenders import CARD, CASH, paid_with, refunded_with
from tillflow.shop.sale.till_sessions import TillClosed, TillOpened
from tillflow.shop.tills.projection import NAME
from tillflow.shop.tills.rows import SESSIONS_VIEW, TILLS_VIEW, Takings, TillRow, TillSession

Drawer = tuple[str, str | None]
"""(till, session); session ``None``: outside any session."""
FIGURES = tuple(field.name for field in msgspec.structs.fields(Takings))


@dataclass
class LogCashUp:
    """Per drawer the figures (by :class:`Takings` field name), float and count, from the log."""

    figures: dict[Drawer, dict[str, int]]
    floats: dict[Drawer, int]
    counts: dict[Drawer, int]

    def expected_cash(self, till: str, session: str) -> int:
        """The float plus cash kept less cash refunded, from the log."""
        figures = self.figures.get((till, session), {})
        kept = figures.get("cash_handed", 0) - figures.get("change", 0)
        return self.floats.get((till, session), 0) + kept - figures.get("cash_refunds", 0)


LOGGED: Final = ("CheckedOut", "ItemsReturned", "CardDeclined", "TillOpened", "TillClosed")
"""The sale's events a cash-up is made of."""


class _LogFold:
    """The cash-up of the log's events added one by one (each lane in order)."""

    def __init__(self) -> None:
        self.figures: dict[Drawer, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.floats: dict[Drawer, int] = {}
        self.counts: dict[Drawer, int] = {}
        self.open_session: dict[str, str | None] = {}

    def add(self, store: EventStore, event: RecordedEvent) -> None:
        figures = self.figures
        if event.type == "CheckedOut":
            sale = event.decode(CheckedOut)
            drawer = figures[(sale.till_id, sale.session_id)]
            drawer["sales"] += 1
            for tender in paid_with(sale.total, sale.tenders):
                if tender.type == CASH:
                    drawer["cash_handed"] += tender.handed
                elif tender.type == CARD:
                    drawer["card"] += tender.amount
            drawer["change"] += sale.change
            drawer["cash"] = drawer["cash_handed"] - drawer["change"]
        elif event.type == "ItemsReturned":
            back = event.decode(ItemsReturned)
            till = back.till_id
            if till is None:
                first = store.read_stream(checkout_stream(back.checkout_id), 0, 1)
                till = first[0].decode(CheckedOut).till_id
            drawer = figures[(till, back.session_id)]
            drawer["returns"] += 1
            for part in refunded_with(back.refund_total, back.refunds):
                drawer[f"{part.type}_refunds"] += part.amount
        elif event.type == "CardDeclined":  # the till's stream: in order with its sessions
            till = event.decode(CardDeclined).till_id
            figures[(till, self.open_session.get(till))]["declines"] += 1
        elif event.type == "TillOpened":
            opened = event.decode(TillOpened)
            self.open_session[opened.till_id] = opened.session_id
            self.floats[(opened.till_id, opened.session_id)] = opened.float
        elif event.type == "TillClosed":
            closed = event.decode(TillClosed)
            self.open_session[closed.till_id] = None
            self.counts[(closed.till_id, closed.session_id)] = closed.counted

    def result(self) -> LogCashUp:
        figures = {key: dict(value) for key, value in self.figures.items()}
        return LogCashUp(figures, dict(self.floats), dict(self.counts))


def fold_log(store: EventStore, upto: dict[int, int] | None = None) -> LogCashUp:
    """The cash-up from the log's events (per lane up to ``upto``; ``None``: all), read a
    bounded batch at a time."""
    folding = _LogFold()
    for lane in range(store.lane_count):
        for event in store.iter_all(lane):
            if upto is not None and event.position > upto[lane]:
                break
            folding.add(store, event)
    return folding.result()


def _shown(takings: Takings, late: Takings | None = None) -> dict[str, int]:
    """The non-zero figures of ``takings`` (plus ``late``) by name."""
    mine = msgspec.structs.asdict(takings)
    extra = msgspec.structs.asdict(late) if late is not None else {}
    summed = {name: mine[name] + extra.get(name, 0) for name in FIGURES}
    return {name: value for name, value in summed.items() if value}


def _sorted(figures: dict[str, int]) -> dict[str, int]:
    """By name: the same figures read the same however the log was folded."""
    return dict(sorted(figures.items()))


class CashUpAudit:
    """The consistent-cut property of the cash-up (see the module docstring)."""

    def __init__(self, processor: str = NAME) -> None:
        self.processor = processor
        self.passed = LogTail(LOGGED)
        self.folding = _LogFold()
        """The log's events up to the processor's checkpoints, each folded once."""
        self.last = LastAnswer()

    def __call__(self, store: EventStore) -> list[str]:
        with store.snapshot():
            upto = passed_by(store, self.processor)
            tills = list(store.view_rows(TILLS_VIEW))
            sessions = list(store.view_rows(SESSIONS_VIEW))
            return self.last.of(
                (store, upto, tills, sessions), lambda: self._audit(store, upto, tills, sessions)
            )

    def _audit(
        self,
        store: EventStore,
        upto: dict[int, int],
        till_rows: list[tuple[str, bytes]],
        session_rows: list[tuple[str, bytes]],
    ) -> list[str]:
        restarted, events = self.passed.advance(store, upto)
        if restarted:
            self.folding = _LogFold()
        for event in events:
            self.folding.add(store, event)
        truth = self.folding.result()
        tills = [msgspec.json.decode(raw, type=TillRow) for _, raw in till_rows]
        sessions = [msgspec.json.decode(raw, type=TillSession) for _, raw in session_rows]
        shown: dict[Drawer, dict[str, int]] = {}
        for till in tills:
            shown[(till.till_id, None)] = _shown(till.outside)
        for row in sessions:
            shown[(row.till_id, row.session_id)] = _shown(row.takings, row.late)
        found = []
        for drawer in sorted(set(shown) | set(truth.figures), key=str):
            logged = {name: value for name, value in truth.figures.get(drawer, {}).items() if value}
            if shown.get(drawer, {}) != logged:
                found.append(
                    f"{self.processor} at {upto}: till {drawer[0]} session {drawer[1]} shows "
                    f"{_sorted(shown.get(drawer, {}))}, the log's events up to there "
                    f"{_sorted(logged)}"
                )
        for row in sessions:
            drawer = (row.till_id, row.session_id)
            if row.opened_at is not None and row.float != truth.floats.get(drawer):
                found.append(f"till {row.till_id} session {row.session_id}: float {row.float}")
            if row.counted != truth.counts.get(drawer):
                found.append(f"till {row.till_id} session {row.session_id}: counted {row.counted}")
        return found
