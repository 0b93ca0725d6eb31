"""Receipt numbers: 1, 2, 3 … per till, dense, given behind the sale by the cash-up.

The cash-up's processor (``tills``) handles every ``CheckedOut`` in log order and gives it
the till's next number (:func:`number`); the number and the till's counter are view rows
committed with the processor's checkpoint, so each checkout is numbered exactly once however
often its batch is redone (a crash before the commit, a lost race with another worker on a
till's counter row, which spans lanes). Hence:

* dense and unique per till: a counter moves by one per ``CheckedOut``, and a checkout has
  one ``CheckedOut`` ever (its stream is new; its event id derives from its id);
* a retry of a checkout records nothing new, so it keeps its number; a restart resumes from
  the committed checkpoint and counters;
* a declined card records ``CardDeclined`` on the till's stream, not a sale: no number;
* returns are not numbered (a return names no till): their receipt names the original's.

Numbering is asynchronous: a checkout is readable before it is numbered. Readers wait for
the processor to pass the checkout's position (``Runtime.wait_for``) before giving up.
Earlier versions numbered in a processor of their own, ``receipts``; :mod:`.handover`
hands a store numbered by it over to the cash-up.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tillflow.engine import EventStore, Session

NUMBERED_BY: Final = "tills"
"""The processor that gives the numbers, which readers wait for: the cash-up's
(``shop/tills/projection.py`` declares itself under this name)."""
NUMBERS_VIEW: Final = "receipt_numbers"
"""Checkout id → :class:`Numbered`."""
TILLS_VIEW: Final = "receipt_tills"
"""Till id → the last number it gave (an int)."""


class Numbered(msgspec.Struct, frozen=True):
    """A checkout's receipt number at its till."""

    till_id: str
    number: int


class SaleAtTill(msgspec.Struct):
    """The part of a ``CheckedOut`` numbering needs (nothing else is decoded)."""

    checkout_id: str
    till_id: str


SALE_AT_TILL: Final = msgspec.json.Decoder(SaleAtTill)
"""Decodes a ``CheckedOut``'s data as a :class:`SaleAtTill`."""


def number(session: Session, checkout_id: str, till_id: str) -> None:
    """Give checkout ``checkout_id`` the next number of till ``till_id``."""
    last: int = session.get(TILLS_VIEW, till_id, int) or 0
    session.put(TILLS_VIEW, till_id, last + 1)
    session.put(NUMBERS_VIEW, checkout_id, Numbered(till_id, last + 1))


_NUMBERED: Final = msgspec.json.Decoder(Numbered)


def receipt_number(store: EventStore, checkout_id: str) -> Numbered | None:
    """The checkout's receipt number as committed (``None``: not numbered yet)."""
    raw = store.read_view(NUMBERS_VIEW, checkout_id)
    return None if raw is None else _NUMBERED.decode(raw)


def numbers_of(store: EventStore, till_id: str) -> list[int]:
    """Every number given at ``till_id``, in order (for audits and tests)."""
    return sorted(
        numbered.number
        for _, raw in store.view_rows(NUMBERS_VIEW)
        if (numbered := _NUMBERED.decode(raw)).till_id == till_id
    )
