"""Tills' write side: open and close sessions, and say which session a sale belongs to.

A till's state is read from its stream ``till-<id>`` (:mod:`~tillflow.shop.sale.till_sessions`)
and cached per till: a checkout asks :meth:`Tills.session_for` on its hot path, which reads
the stream again only when the cached state is older than ``TILL_FRESH_FOR`` seconds (an
open or close made through this object counts at once). So a till closed by another
process may ring up for that long; such a sale names the closed session and the cash-up
counts it as *late* (:mod:`tillflow.shop.tills`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Final

from tillflow.engine import (
    ConcurrencyConflict,
    EventIdReused,
    EventStore,
    NewEvent,
    Receipt,
    id_from_key,
)
from tillflow.engine.errors import TillflowError
from tillflow.engine.store import receipt_of
from tillflow.shop.sale.events import till_stream
from tillflow.shop.sale.till_sessions import (
    CloseTill,
    OpenTill,
    TillClosed,
    TillOpened,
    TillState,
    check_close,
    check_open,
    decide_close,
    decide_open,
    same_close,
    same_open,
)

TILL_FRESH_FOR: Final = 0.2
"""Seconds a till's cached state answers :meth:`Tills.session_for` without a read."""
RETRIES: Final = 20


def opened_id(till_id: str, session_id: str) -> bytes:
    """The id of a session's ``TillOpened`` event (one per till and session)."""
    return id_from_key("till-opened", f"{till_id}/{session_id}")


def closed_id(till_id: str, session_id: str) -> bytes:
    """The id of a session's ``TillClosed`` event."""
    return id_from_key("till-closed", f"{till_id}/{session_id}")


class Tills:
    """Open and close tills over one store; thread-safe."""

    def __init__(
        self,
        store: EventStore,
        clock: Callable[[], datetime],
        away: Callable[[], bool] = lambda: False,
    ) -> None:
        """``away``: whether the database is known to be away now; then a sale at a till
        read before is judged by that state, without asking (its append then says whether
        the database is back)."""
        self.store = store
        self.clock = clock
        self.away = away
        self._known: dict[str, tuple[float, TillState]] = {}
        self._lock = threading.Lock()

    def state(self, till_id: str) -> TillState:
        """The till as its stream says now (one read of what is new since the cache)."""
        with self._lock:
            cached = self._known.get(till_id)
        state = TillState(till_id) if cached is None else cached[1]
        looked_at = time.monotonic()
        state = state.after(self.store.read_stream(till_stream(till_id), state.version))
        with self._lock:
            known = self._known.get(till_id)
            if known is None or known[1].version <= state.version:
                self._known[till_id] = (looked_at, state)
        return state

    def session_for(self, till_id: str) -> str | None:
        """The open session a sale at ``till_id`` belongs to (``None``: unmanaged till),
        from a state at most ``TILL_FRESH_FOR`` seconds old. Raises
        :class:`~tillflow.shop.sale.till_sessions.TillNotOpen` for a closed till."""
        cached = self._known.get(till_id)
        if cached is not None and (time.monotonic() - cached[0] < TILL_FRESH_FOR or self.away()):
            return cached[1].session_for_sale()
        return self.state(till_id).session_for_sale()

    def open(self, command: OpenTill) -> Receipt:
        """Record ``TillOpened``; see :mod:`~tillflow.shop.sale.till_sessions`. Raises
        :class:`InvalidField`, :class:`TillAlreadyOpen`, :class:`CheckoutConflict`."""
        check_open(command)
        session_id = command.session_id or str(uuid.uuid4())
        event_id = opened_id(command.till_id, session_id)
        conflict: TillflowError | None = None
        for _ in range(RETRIES):
            found = self.store.get_event(event_id)
            if found is not None:
                same_open(found.decode(TillOpened), command)
                return receipt_of([found])
            state = self.state(command.till_id)
            opened = decide_open(state, command, session_id, self.clock())
            try:
                return self._append(state, NewEvent("TillOpened", opened, id=event_id))
            except (ConcurrencyConflict, EventIdReused) as lost:  # decide again
                conflict = lost
        assert conflict is not None  # every round lost a race
        raise conflict

    def close(self, command: CloseTill) -> Receipt:
        """Record ``TillClosed`` for the open session. Raises :class:`InvalidField`,
        :class:`TillNotOpen`, :class:`CheckoutConflict`."""
        check_close(command)
        conflict: TillflowError | None = None
        for _ in range(RETRIES):
            if command.session_id is not None:
                found = self.store.get_event(closed_id(command.till_id, command.session_id))
                if found is not None:
                    same_close(found.decode(TillClosed), command)
                    return receipt_of([found])
            state = self.state(command.till_id)
            closed = decide_close(state, command, self.clock())
            event_id = closed_id(command.till_id, closed.session_id)
            try:
                return self._append(state, NewEvent("TillClosed", closed, id=event_id))
            except (ConcurrencyConflict, EventIdReused) as lost:
                conflict = lost
        assert conflict is not None
        raise conflict

    def _append(self, state: TillState, event: NewEvent) -> Receipt:
        """Append ``event`` guarded by the till's version in ``state``. Raises
        :class:`ConcurrencyConflict` when the stream moved on (a decline, another open or
        close), :class:`EventIdReused` when a concurrent call recorded the same session."""
        stream = till_stream(state.till_id)
        receipt = self.store.append(stream, [event], state.version)
        data = event.data
        session = data.session_id if isinstance(data, TillOpened) else None
        assert isinstance(data, (TillOpened, TillClosed))
        after = TillState(state.till_id, receipt.streams[stream], session, data.session_id)
        with self._lock:  # sales here see it at once; an older read cannot replace it
            known = self._known.get(state.till_id)
            if known is None or known[1].version < after.version:
                self._known[state.till_id] = (time.monotonic(), after)
        return receipt
