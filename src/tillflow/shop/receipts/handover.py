"""Handing receipt numbering over from the retired ``receipts`` processor to the cash-up.

Earlier versions numbered receipts in a processor of their own, ``receipts``; the cash-up's
processor now numbers them in the pass it already makes over the sale (one scan and one
decode of each checkout, one batch). A store numbered the old way is handed over lane by
lane, before the cash-up's first batch on the lane (its ``Processor.prepare``), so that no
number already given changes and none is given twice:

* the checkouts ``receipts`` had not numbered, up to where the cash-up stands on the lane,
  are numbered as it would have numbered them (the tills' counters go on where it left them),
  in batches of :data:`CATCH_UP_BATCH`, each moving its checkpoint;
* the last transaction records the lane's **handover position** — the cash-up numbers the
  checkouts after it, and only those — and retires ``receipts`` on the lane
  (:mod:`tillflow.engine.retiring`): a worker of an earlier version still running it is
  refused its batch under way and finds nothing more to number.

The cash-up then keeps, per lane, the position through which the lane is numbered (the
last checkout it numbered). A worker of an earlier version that runs the cash-up after the
handover (during a rolling upgrade) passes checkouts without numbering them; the next time
this version's cash-up takes the lane — ``prepare`` runs again whenever a lane comes to a
worker — it numbers the checkouts between that position and where the cash-up stands, as
the handover did.

Every step is a compare-and-set on ``receipts``'s checkpoint (after the handover, a counter
past :data:`~tillflow.engine.retiring.RETIRED_AT`), committed only while the cash-up has
not moved past the position read (``BatchEffects.not_past``): whoever loses a race reads
again. On a new store there is nothing to number: the handover only records position 0 and
retires the name.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tillflow.engine import ConcurrencyConflict, EventStore, RecordedEvent, Session
from tillflow.engine.errors import CheckpointConflict
from tillflow.engine.retiring import RETIRED_AT, is_retired
from tillflow.shop.receipts.numbering import SALE_AT_TILL, number

RETIRED: Final = "receipts"
"""The processor that numbered receipts in earlier versions."""
HANDOVER_VIEW: Final = "receipt_handover"
"""Lane (as a string) → the handover position on it (an int)."""
NUMBERED_VIEW: Final = "receipt_numbered_through"
"""Lane (as a string) → a position through which every checkout of the lane is numbered:
the handover position, then the last checkout the cash-up numbered (an int)."""
CATCH_UP_BATCH: Final = 5000
"""Positions a catch-up transaction spans at most."""
LOST_RACES_IN_TURN: Final = 8
"""Races lost in a row after which :func:`hand_over` gives up for this step, rather than
keep the database busy: the lost race's error fails the step, and the next one tries again."""
_CHECKOUTS: Final = frozenset({"CheckedOut"})


class NotHandedOver(RuntimeError):
    """The cash-up met a lane whose numbering was not handed over to it (its processor was
    declared without :func:`hand_over` as its ``prepare``): a bug, refused rather than
    numbering twice."""

    def __init__(self, lane: int) -> None:
        super().__init__(f"receipt numbering on lane {lane} was not handed over to the cash-up")
        self.lane = lane


def hand_over(store: EventStore, lane: int, successor: str) -> None:
    """Hand numbering on ``lane`` over to processor ``successor``; once that is done, number
    what an earlier version's cash-up passed without numbering (see the module). Safe to
    run from several workers at once; does nothing when there is nothing to do."""
    key = str(lane)
    lost = 0  # races lost in a row
    while True:
        retired_at = store.checkpoint(RETIRED, lane)
        successor_at = store.checkpoint(successor, lane)
        through: int | None  # what the lane is numbered through once this commits
        if is_retired(retired_at):
            found = _passed_unnumbered(store, lane, successor_at)
            if found is None:
                return
            checkouts, through = found
            new = retired_at + 1  # still retired: a counter that orders these commits
        else:
            upto = min(successor_at, retired_at + CATCH_UP_BATCH)
            checkouts = store.read(lane, retired_at, upto, _CHECKOUTS) if upto > retired_at else []
            last = upto >= successor_at
            new = RETIRED_AT if last else upto
            through = max(retired_at, upto) if last else None
        session = Session(store, RETIRED)
        for event in checkouts:
            sale = SALE_AT_TILL.decode(event.data)
            number(session, sale.checkout_id, sale.till_id)
        effects = session.seal()
        if through is not None:
            effects.views[(NUMBERED_VIEW, key)] = msgspec.json.encode(through)
            if not is_retired(retired_at):
                effects.views[(HANDOVER_VIEW, key)] = msgspec.json.encode(through)
        effects.not_past[(successor, lane)] = successor_at
        try:
            store.commit_batch(RETIRED, lane, retired_at, new, effects)
        except (CheckpointConflict, ConcurrencyConflict):
            lost += 1
            if lost >= LOST_RACES_IN_TURN:
                raise  # the step fails; the runtime backs off and prepares the lane again
            continue  # another worker moved first: look again
        lost = 0


def _passed_unnumbered(
    store: EventStore, lane: int, successor_at: int
) -> tuple[list[RecordedEvent], int] | None:
    """After the handover: the checkouts the cash-up passed on ``lane`` without numbering
    them (an earlier version's cash-up ran it since), from the position through which the
    lane is numbered, at most :data:`CATCH_UP_BATCH` positions of them, and the position
    they reach; ``None``: there are none."""
    raw = store.read_view(NUMBERED_VIEW, str(lane))
    if raw is None:
        raise NotHandedOver(lane)
    start: int = msgspec.json.decode(raw, type=int)
    while start < successor_at:
        upto = min(successor_at, start + CATCH_UP_BATCH)
        checkouts = store.read(lane, start, upto, _CHECKOUTS)
        if checkouts:
            return checkouts, upto
        start = upto
    return None


def handed_over_at(session: Session, lane: int) -> int:
    """The handover position of ``lane``: the cash-up numbers the checkouts after it.
    Written once, so kept in the processor's memory. Raises :class:`NotHandedOver`."""
    key = (HANDOVER_VIEW, lane)
    found: int | None = session.cache.get(key)
    if found is None:
        raw = session.store.read_view(HANDOVER_VIEW, str(lane))
        if raw is None:
            raise NotHandedOver(lane)
        found = session.cache[key] = msgspec.json.decode(raw, type=int)
    return found


def numbered_through(session: Session, event: RecordedEvent) -> None:
    """Record that ``event``'s lane is numbered through ``event`` (committed with the batch)."""
    session.put(NUMBERED_VIEW, str(event.lane), event.position)
