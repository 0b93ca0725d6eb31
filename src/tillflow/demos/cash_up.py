"""The shop demo's tills open in the morning and are cashed up at night: each opens a
session with a float before the first customer, and once the shop has closed and every
processor has caught up, each drawer is counted and the session closed. The Z reports are
then checked against the log (:mod:`tillflow.shop.tills.audit`, folded on its own): the
takings by tender and the expected cash, and the difference each count was made with —
``till-1``'s drawer is counted :data:`SHORT` cents short, the others exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tillflow.engine import EventStore
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill
from tillflow.shop.tills.audit import CashUpAudit, fold_log
from tillflow.shop.tills.queries import TillReader
from tillflow.shop.tills.rows import TillSession

FLOAT: Final = 20_000
"""Cents in each drawer in the morning."""
SESSION: Final = "day-1"
SHORT: Final = 50
"""Cents ``till-1``'s count is short: a Z report with a difference to show."""


@dataclass
class DemoTills:
    """The demo's tills ``till-1`` .. ``till-<count>`` and the counts made at night."""

    count: int
    counted: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [f"till-{number}" for number in range(1, self.count + 1)]

    def open_all(self, sale: SaleService) -> None:
        for till in self.ids:
            sale.tills.open(OpenTill(till, FLOAT, SESSION))

    def close_all(self, store: EventStore, sale: SaleService) -> None:
        """Count every drawer (expected cash from the log; ``till-1`` short) and close."""
        truth = fold_log(store)
        for till in self.ids:
            expected = truth.expected_cash(till, SESSION)
            counted = max(0, expected - (SHORT if till == "till-1" else 0))
            sale.tills.close(CloseTill(till, counted, SESSION))
            self.expected[till], self.counted[till] = expected, counted

    def z_reports(self, store: EventStore) -> list[TillSession]:
        reader = TillReader(store)
        found = [reader.session(till, SESSION) for till in self.ids]
        return [row for row in found if row is not None]

    def problems(self, store: EventStore) -> list[str]:
        """Each Z report against the log and the count made (call once caught up)."""
        found = CashUpAudit()(store)
        shown = {row.till_id: row for row in self.z_reports(store)}
        for till in self.ids:
            row = shown.get(till)
            if row is None or not row.closed:
                found.append(f"{till}: closed at night, but it has no Z report")
                continue
            made = (self.expected[till], self.counted[till])
            if (row.expected_cash, row.counted) != made or row.late.sales:
                found.append(
                    f"{till}: the Z report expects {row.expected_cash} and shows "
                    f"{row.counted} counted ({row.late.sales} late sales); the log gives "
                    f"{made[0]}, the count was {made[1]}"
                )
        return found
