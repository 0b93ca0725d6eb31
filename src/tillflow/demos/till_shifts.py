"""Shift changes at a simulated shop's tills: every few commands one till closes its session
with a count and opens the next, so that the cash-up has sessions to keep, and the Z reports
can be checked against the log at the end.

A count is the drawer's expected cash from the log (float + cash kept − cash refunded) plus
a known difference of −2..+2 cents; each Z report must show exactly that difference (unless
a sale reached the cash-up after the close — possible on several lanes — when it is kept
apart as ``late``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tillflow.engine import EventStore
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill
from tillflow.shop.tills.audit import fold_log
from tillflow.shop.tills.queries import TillReader

SHIFT_EVERY: Final = 5
"""Commands between two shift changes."""
FLOAT: Final = 100_000
TILLS: Final = 3


@dataclass
class TillShifts:
    """The shift changes made and the difference each count was made with."""

    differences: dict[tuple[str, str], int] = field(default_factory=dict)

    def due(self, command: int) -> bool:
        return command % SHIFT_EVERY == 0

    def change(self, store: EventStore, sale: SaleService, command: int) -> str:
        """Close the open session of the till whose turn it is (counting its drawer with a
        small difference) and open the next, numbered by ``command``."""
        till = f"till-{(command // SHIFT_EVERY) % TILLS + 1}"
        done = []
        session = sale.tills.state(till).open_session
        if session is not None:
            expected = fold_log(store).expected_cash(till, session)
            counted = max(0, expected + command % 5 - 2)
            sale.tills.close(CloseTill(till, counted, session))
            self.differences[(till, session)] = counted - expected
            done.append(f"close {till} {session} counting {counted}")
        sale.tills.open(OpenTill(till, FLOAT, f"s{command}"))
        return "; ".join([*done, f"open {till} s{command}"])

    def violations(self, store: EventStore) -> list[str]:
        """Each Z report's count, expected cash and difference as made (call once the
        cash-up has caught up)."""
        reader = TillReader(store)
        found = []
        for (till, session), difference in sorted(self.differences.items()):
            row = reader.session(till, session)
            if row is None or not row.closed:
                found.append(f"till {till} session {session}: closed, but no Z report")
                continue
            if row.late.sales or row.late.returns:
                continue  # a sale handled after the close: the Z report is as at the close
            if row.difference != difference:
                found.append(
                    f"till {till} session {session}: the Z report's difference is "
                    f"{row.difference}, the count was made {difference} off"
                )
        return found
