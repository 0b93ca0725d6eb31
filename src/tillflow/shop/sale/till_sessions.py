"""Till sessions: a till is opened with a float and closed with the cash counted in it.

Both are recorded on the till's own stream ``till-<id>`` (where declined cards are too)::

    OpenTill{till_id, float, session_id?} ──► TillOpened   (the till rings up sales)
    CloseTill{till_id, counted, session_id?} ──► TillClosed (the till refuses sales)

Rules:

* a till whose stream holds no ``TillOpened`` is *unmanaged*: it rings up as tills always
  did, and its sales belong to no session (callers that never open tills keep working);
* once a till has been opened, it rings up sales and returns only while a session is open:
  a closed till refuses with :class:`TillNotOpen` (409 over HTTP);
* opening an open till is :class:`TillAlreadyOpen`, closing a till that is not open is
  :class:`TillNotOpen`; both name the till and the session it has;
* ``session_id`` is the idempotency key: a retry of an open or a close with the same
  session and content answers the first receipt; other content is
  :class:`~tillflow.shop.errors.CheckoutConflict` naming the field that differs.

Money in integer cents; the float and the counted cash are 0 .. :data:`MAX_CASH`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec

from tillflow.engine import RecordedEvent
from tillflow.engine.errors import TillflowError
from tillflow.shop import validation
from tillflow.shop.errors import CheckoutConflict
from tillflow.shop.sale.tenders import MAX_AMOUNT

MAX_CASH: Final = MAX_AMOUNT
"""The most cents a float or a count may be."""
SESSION_TYPES: Final = frozenset({"TillOpened", "TillClosed"})


class OpenTill(msgspec.Struct, frozen=True):
    """Open ``till_id`` with ``float`` cents in the drawer. ``session_id`` names the session
    (and makes a retry harmless); omitted, one is made up."""

    till_id: str
    float: int
    session_id: str | None = None


class CloseTill(msgspec.Struct, frozen=True):
    """Close ``till_id``'s open session with the ``counted`` cents found in the drawer.
    ``session_id``, when given, must be the open session's (and makes a retry harmless)."""

    till_id: str
    counted: int
    session_id: str | None = None


class TillOpened(msgspec.Struct, frozen=True):
    till_id: str
    session_id: str
    float: int
    at: datetime


class TillClosed(msgspec.Struct, frozen=True):
    till_id: str
    session_id: str
    counted: int
    at: datetime


TILL_EVENTS: dict[str, type] = {"TillOpened": TillOpened, "TillClosed": TillClosed}


class TillNotOpen(TillflowError):
    """A till that has been opened before but has no open session now: it closes nothing,
    and rings up no sale or return (``last``: its last session, closed)."""

    def __init__(self, till_id: str, last: str | None) -> None:
        self.till_id = till_id
        self.last = last
        closed = f" (session {last!r} is closed)" if last else ""
        super().__init__(f"till_id={till_id!r}: the till is not open{closed}; open it first")


class TillAlreadyOpen(TillflowError):
    """An ``OpenTill`` for a till whose session ``open`` is still open."""

    def __init__(self, till_id: str, open_session: str) -> None:
        self.till_id = till_id
        self.open_session = open_session
        super().__init__(f"till_id={till_id!r}: session {open_session!r} is open; close it first")


@dataclass(frozen=True)
class TillState:
    """A till as its stream says, up to ``version``: the open session (``None``: closed or
    never opened) and the last session it had (``None``: unmanaged)."""

    till_id: str
    version: int = 0
    open_session: str | None = None
    last_session: str | None = None

    @property
    def managed(self) -> bool:
        """Whether the till was ever opened (then it sells only while open)."""
        return self.last_session is not None

    def after(self, events: Sequence[RecordedEvent]) -> TillState:
        """This state moved through ``events``, the stream's next ones (any type)."""
        state = self
        for event in events:
            session = state.open_session
            last = state.last_session
            if event.type == "TillOpened":
                session = last = event.decode(TillOpened).session_id
            elif event.type == "TillClosed":
                session = None
            state = TillState(self.till_id, event.version, session, last)
        return state

    def session_for_sale(self) -> str | None:
        """The session a sale at this till belongs to (``None``: unmanaged). Raises
        :class:`TillNotOpen` when the till is managed and closed."""
        if self.managed and self.open_session is None:
            raise TillNotOpen(self.till_id, self.last_session)
        return self.open_session


def check_open(command: object) -> OpenTill:
    """``command``'s fields, or :class:`~tillflow.shop.errors.InvalidField` naming one."""
    opened = validation.of_type("command", command, OpenTill)
    _check(opened.till_id, "float", opened.float, opened.session_id)
    return opened


def check_close(command: object) -> CloseTill:
    """``command``'s fields, or :class:`~tillflow.shop.errors.InvalidField` naming one."""
    closed = validation.of_type("command", command, CloseTill)
    _check(closed.till_id, "counted", closed.counted, closed.session_id)
    return closed


def _check(till_id: object, cash_field: str, cash: object, session_id: object) -> None:
    validation.identifier("till_id", till_id)
    validation.whole_number(cash_field, cash, 0, MAX_CASH)
    if session_id is not None:
        validation.identifier("session_id", session_id)


def same_open(recorded: TillOpened, command: OpenTill) -> None:
    """Raise :class:`CheckoutConflict` unless ``command`` repeats ``recorded``."""
    if recorded.till_id != command.till_id:
        raise CheckoutConflict("session_id", recorded.session_id, "till_id")
    if recorded.float != command.float:
        raise CheckoutConflict("session_id", recorded.session_id, "float")


def same_close(recorded: TillClosed, command: CloseTill) -> None:
    """Raise :class:`CheckoutConflict` unless ``command`` repeats ``recorded``."""
    if recorded.counted != command.counted:
        raise CheckoutConflict("session_id", recorded.session_id, "counted")


def decide_open(state: TillState, command: OpenTill, session_id: str, now: datetime) -> TillOpened:
    """The ``TillOpened`` for ``command`` (checked) on a till in ``state``."""
    if state.open_session is not None:
        raise TillAlreadyOpen(command.till_id, state.open_session)
    return TillOpened(command.till_id, session_id, command.float, now)


def decide_close(state: TillState, command: CloseTill, now: datetime) -> TillClosed:
    """The ``TillClosed`` for ``command`` (checked) on a till in ``state``."""
    session = state.open_session
    if session is None or command.session_id not in (None, session):
        raise TillNotOpen(command.till_id, state.last_session)
    return TillClosed(command.till_id, session, command.counted, now)
