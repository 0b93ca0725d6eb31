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

Every step is a compare-and-set on ``receipts``'s checkpoint, committed only while the
cash-up has not moved past the position read (``BatchEffects.not_past``): whoever loses a
race reads again. On a new store there is nothing to number: the handover only records
position 0 and retires the name.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tillflow.engine import ConcurrencyConflict, EventStore, Session
from tillflow.engine.errors import CheckpointConflict
from tillflow.engine.retiring import RETIRED_AT, is_retired
from tillflow.shop.receipts.numbering import number

RETIRED: Final = "receipts"
"""The processor that numbered receipts in earlier versions."""
HANDOVER_VIEW: Final = "receipt_handover"
"""Lane (as a string) → the handover position on it (an int)."""
CATCH_UP_BATCH: Final = 5000
"""Positions a catch-up transaction spans at most."""
_CHECKOUTS: Final = frozenset({"CheckedOut"})


class _Sale(msgspec.Struct):
    checkout_id: str
    till_id: str


_SALE: Final = msgspec.json.Decoder(_Sale)


class NotHandedOver(RuntimeError):
    """The cash-up met a lane whose numbering was not handed over to it (its processor was
    declared without :func:`hand_over` as its ``prepare``): a bug, refused rather than
    numbering twice."""

    def __init__(self, lane: int) -> None:
        super().__init__(f"receipt numbering on lane {lane} was not handed over to the cash-up")
        self.lane = lane


def hand_over(store: EventStore, lane: int, successor: str) -> None:
    """Hand numbering on ``lane`` over to processor ``successor`` (see the module). Does
    nothing once done; safe to run from several workers at once."""
    while True:
        retired_at = store.checkpoint(RETIRED, lane)
        if is_retired(retired_at):
            return
        successor_at = store.checkpoint(successor, lane)
        upto = min(successor_at, retired_at + CATCH_UP_BATCH)
        session = Session(store, RETIRED)
        for event in store.read(lane, retired_at, upto, _CHECKOUTS) if upto > retired_at else ():
            sale = _SALE.decode(event.data)
            number(session, sale.checkout_id, sale.till_id)
        effects = session.seal()
        last = upto >= successor_at
        if last:
            handover = max(retired_at, successor_at)
            effects.views[(HANDOVER_VIEW, str(lane))] = msgspec.json.encode(handover)
            effects.not_past[(successor, lane)] = successor_at
        try:
            store.commit_batch(RETIRED, lane, retired_at, RETIRED_AT if last else upto, effects)
        except (CheckpointConflict, ConcurrencyConflict):
            continue  # another worker moved first: look again
        if last:
            return


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
