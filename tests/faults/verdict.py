"""The verdict on a shop after a fault run, judged from its sale log (the truth) alone.

Once every processor has caught up: every acknowledged checkout is in the log once, where its
receipt said, and nothing else is; the report equals the truth computed from the log; every
row is a consistent cut of Inventory's stream; Inventory took every line of every checkout
exactly once (none skipped, none applied twice); every checkpoint is at its lane's head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

from tillflow.engine import EventStore, Receipt
from tillflow.shop.assembly import shop_processors
from tillflow.shop.inventory.events import ProductTaken
from tillflow.shop.reporting.audit import ConsistentCutAudit, read_rows, read_totals
from tillflow.shop.reporting.projection import REPORT_VIEWS
from tillflow.shop.reporting.truth import ShopTruth
from tillflow.shop.sale.events import CheckedOut

PROCESSORS = tuple(processor.name for processor in shop_processors())

Place = tuple[int, int]
"""(lane, position) of an event."""


def behind(store: EventStore) -> dict[str, int]:
    """Per processor, how many positions its checkpoints are behind the heads in all."""
    heads = store.heads()
    return {
        name: sum(head - store.checkpoint(name, lane) for lane, head in heads.items())
        for name in PROCESSORS
    }


def shop_violations(
    store: EventStore,
    acknowledged: Mapping[str, Place],
    expected: Collection[str],
    received: Mapping[str, int],
) -> list[str]:
    """Everything wrong with the shop. ``acknowledged``: checkout id → where its receipt
    put it; ``expected``: every checkout id the log must hold (and no other);
    ``received``: units delivered per product. Call once the processors have caught up."""
    found: list[str] = []
    logged = _sale_log(store, found)
    missing = set(expected) - logged.keys()
    extra = logged.keys() - set(expected)
    if missing:
        found.append(f"{len(missing)} checkouts never recorded, e.g. {sorted(missing)[:5]}")
    if extra:
        found.append(f"{len(extra)} checkouts recorded but never rung up: {sorted(extra)[:5]}")
    for checkout_id, place in acknowledged.items():
        recorded = logged.get(checkout_id)
        if recorded is not None and recorded[0] != place:
            found.append(f"{checkout_id} acknowledged at {place}, recorded at {recorded[0]}")
    truth = ShopTruth()
    for product_id, quantity in received.items():
        truth.received(product_id, quantity)
    for (lane, position), checked_out in logged.values():
        truth.checked_out(checked_out, Receipt({lane: position}, {}))
    found += truth.violations(read_rows(store, REPORT_VIEWS), read_totals(store, REPORT_VIEWS))
    found += ConsistentCutAudit(REPORT_VIEWS)(store)
    found += _taken_once(store, {cid: checked for cid, (_, checked) in logged.items()})
    found += [f"{name}: {count} positions behind" for name, count in behind(store).items() if count]
    return found


def _sale_log(store: EventStore, found: list[str]) -> dict[str, tuple[Place, CheckedOut]]:
    """Every recorded checkout by id, with where it was recorded."""
    logged: dict[str, tuple[Place, CheckedOut]] = {}
    for lane, head in store.heads().items():
        for event in store.read(lane, 0, head, types=("CheckedOut",)):
            checked_out = event.decode(CheckedOut)
            if checked_out.checkout_id in logged:
                found.append(f"{checked_out.checkout_id} recorded twice")
            logged[checked_out.checkout_id] = ((lane, event.position), checked_out)
    return logged


def _taken_once(store: EventStore, checkouts: Mapping[str, CheckedOut]) -> list[str]:
    """Inventory's ``ProductTaken`` per (checkout, line): exactly one for every line."""
    taken: Counter[tuple[str, int]] = Counter()
    for lane, head in store.heads().items():
        for event in store.read(lane, 0, head, types=("ProductTaken",)):
            took = event.decode(ProductTaken)
            taken[(took.checkout_id, took.line)] += 1
    wanted = Counter(
        (checkout_id, line)
        for checkout_id, checked_out in checkouts.items()
        for line in range(len(checked_out.lines))
    )
    wrong = sorted(key for key in taken.keys() | wanted.keys() if taken[key] != wanted[key])
    if not wrong:
        return []
    examples = ", ".join(f"{cid} line {line}: {taken[(cid, line)]}×" for cid, line in wrong[:5])
    return [f"{len(wrong)} checkout lines not taken off the shelf exactly once: {examples}"]
