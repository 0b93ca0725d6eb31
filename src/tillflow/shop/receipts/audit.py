"""An audit of receipt numbers against the log, written apart from the processor that gives
them: every recorded checkout has a number at its own till, and each till's numbers are
exactly 1, 2, … n — no gap, no duplicate — where n is the till's checkouts once the
``tills`` processor has caught up (the demo checks after its drain), and 1..k for the k
it has numbered at any moment before (the simulator checks after every action)."""

from __future__ import annotations

from collections import defaultdict

import msgspec

from tillflow.engine import EventStore
from tillflow.shop.receipts.numbering import NUMBERS_VIEW, SALE_AT_TILL, Numbered


def numbering_violations(store: EventStore, caught_up: bool = True) -> list[str]:
    """Every way the committed receipt numbers disagree with the log (empty: none).
    ``caught_up=False``: the processor may be behind, so checkouts not numbered yet are no
    violation — but what is numbered must still be each till's 1..k, at the right till."""
    found: list[str] = []
    sales: dict[str, str] = {}
    for lane in range(store.lane_count):
        for event in store.iter_all(lane):
            if event.type == "CheckedOut":
                sale = SALE_AT_TILL.decode(event.data)
                sales[sale.checkout_id] = sale.till_id
    numbers: dict[str, list[int]] = defaultdict(list)
    numbered = msgspec.json.Decoder(Numbered)
    seen: set[str] = set()
    for checkout_id, raw in store.view_rows(NUMBERS_VIEW):
        receipt = numbered.decode(raw)
        seen.add(checkout_id)
        till = sales.get(checkout_id)
        if till is None:
            found.append(f"receipt {receipt.number} of {receipt.till_id}: no {checkout_id}")
        elif till != receipt.till_id:
            found.append(f"checkout {checkout_id} of {till} numbered at {receipt.till_id}")
        numbers[receipt.till_id].append(receipt.number)
    unnumbered = sorted(set(sales) - seen)
    if unnumbered and caught_up:
        found.append(f"{len(unnumbered)} checkout(s) not numbered, e.g. {unnumbered[0]}")
    for till in sorted(set(sales.values()) | set(numbers)):
        given = sorted(numbers[till])
        if given != list(range(1, len(given) + 1)):
            missing = sorted(set(range(1, len(given) + 1)) - set(given))[:3]
            twice = sorted({number for number in given if given.count(number) > 1})[:3]
            found.append(
                f"till {till}: {len(given)} receipt number(s) are not 1..{len(given)} "
                f"(missing {missing}, given twice {twice})"
            )
    return found
