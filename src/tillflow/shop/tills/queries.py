"""Reading the cash-up: a till's X report (its open session so far) and a session's Z
report (as closed), read in one snapshot with the ``tills`` processor's freshness;
optionally after waiting for a receipt (read-your-writes), as the report is read."""

from __future__ import annotations

import msgspec

from tillflow.engine import EventStore, Receipt, Runtime, WaitOutcome
from tillflow.engine.errors import TillflowError
from tillflow.shop.reporting.queries import Freshness, freshness_of
from tillflow.shop.tills.projection import NAME
from tillflow.shop.tills.rows import SESSIONS_VIEW, TILLS_VIEW, TillRow, TillSession, session_key


class UnknownTill(TillflowError):
    """A till the cash-up has seen nothing of (yet: see the freshness of a read)."""

    def __init__(self, till_id: str) -> None:
        self.till_id = till_id
        super().__init__(f"till_id={till_id!r}: no such till in the cash-up")


class UnknownSession(TillflowError):
    """A session of a till that the cash-up has not seen closed (or not seen at all)."""

    def __init__(self, till_id: str, session_id: str, reason: str) -> None:
        self.till_id = till_id
        self.session_id = session_id
        super().__init__(f"session_id={session_id!r} of till {till_id!r}: {reason}")


class TillReport(msgspec.Struct, frozen=True):
    """A till, one of its sessions (``None``: an X report of a till with no open session)
    and how fresh they are; ``final``: the session is closed (a Z report)."""

    till: TillRow
    session: TillSession | None
    freshness: Freshness

    @property
    def final(self) -> bool:
        return self.session is not None and self.session.closed


class TillReader:
    """Reads the committed cash-up from a store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def till(self, till_id: str) -> TillRow | None:
        raw = self.store.read_view(TILLS_VIEW, till_id)
        return None if raw is None else msgspec.json.decode(raw, type=TillRow)

    def tills(self) -> list[TillRow]:
        """Every till the cash-up has seen, by id."""
        decoder = msgspec.json.Decoder(TillRow)
        return [decoder.decode(raw) for _, raw in self.store.view_rows(TILLS_VIEW)]

    def session(self, till_id: str, session_id: str) -> TillSession | None:
        raw = self.store.read_view(SESSIONS_VIEW, session_key(till_id, session_id))
        return None if raw is None else msgspec.json.decode(raw, type=TillSession)

    def x_report(self, till_id: str, waited: WaitOutcome | None = None) -> TillReport:
        """The till and its open session so far. Raises :class:`UnknownTill`."""
        with self.store.snapshot():
            till = self.till(till_id)
            if till is None:
                raise UnknownTill(till_id)
            open_session = till.open_session
            found = None if open_session is None else self.session(till_id, open_session)
            return TillReport(till, found, freshness_of(self.store, NAME, waited))

    def z_report(
        self, till_id: str, session_id: str, waited: WaitOutcome | None = None
    ) -> TillReport:
        """A closed session, final. Raises :class:`UnknownTill`, :class:`UnknownSession`
        (not seen, or still open)."""
        with self.store.snapshot():
            till = self.till(till_id)
            if till is None:
                raise UnknownTill(till_id)
            found = self.session(till_id, session_id)
            if found is None or found.opened_at is None:
                raise UnknownSession(till_id, session_id, "no such session of the till")
            if not found.closed:
                raise UnknownSession(till_id, session_id, "still open: read its X report")
            return TillReport(till, found, freshness_of(self.store, NAME, waited))

    async def caught_up(self, runtime: Runtime, timeout: float) -> WaitOutcome:
        """Wait (at most ``timeout`` s) until the cash-up has passed every event recorded
        so far: what a close waits for, so that on several lanes the Z report holds every
        sale rung up before it (one handled after the close would count as late)."""
        heads = Receipt(self.store.heads(), {})
        return await runtime.wait_for(heads, [NAME], timeout)

    async def wait(
        self, runtime: Runtime, wait_for: Receipt | None, timeout: float
    ) -> WaitOutcome | None:
        """With ``wait_for``: wait (at most ``timeout`` s) until the cash-up passed it."""
        if wait_for is None:
            return None
        return await runtime.wait_for(wait_for, [NAME], timeout)
