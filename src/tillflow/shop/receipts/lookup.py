"""Finding a receipt in a store: the checkout (or return) by its id, its till's receipt
number — waiting a little for the cash-up's processor (``tills``) when it has not numbered the
checkout yet — and the view model of :mod:`~tillflow.shop.receipts.model`.

Numbering runs behind the sale, so a checkout can be read the instant it is recorded but
numbered a moment later. A reader waits (``Runtime.wait_for``, reading the processor's
durable checkpoint, so it works from any process) for at most ``timeout`` seconds, then
raises :class:`~tillflow.shop.errors.ReceiptNotNumbered`: a receipt is never printed
without its number or with a guessed one.
"""

from __future__ import annotations

from tillflow.engine import EventStore, RecordedEvent, Runtime, id_from_key
from tillflow.engine.store import receipt_of
from tillflow.shop.errors import ReceiptNotNumbered, UnknownCheckout, UnknownReturn
from tillflow.shop.receipts.model import (
    PrintedReceipt,
    ShopHeader,
    checkout_receipt,
    return_receipt,
)
from tillflow.shop.receipts.numbering import NUMBERED_BY, Numbered, receipt_number
from tillflow.shop.sale.events import CheckedOut, ItemsReturned, checkout_stream


def recorded_checkout(store: EventStore, checkout_id: str) -> RecordedEvent:
    """The ``CheckedOut`` of ``checkout_id``. Raises :class:`UnknownCheckout`."""
    first = store.read_stream(checkout_stream(checkout_id), 0, 1)
    if not first or first[0].type != "CheckedOut":
        raise UnknownCheckout(checkout_id)
    return first[0]


def recorded_return(
    store: EventStore, return_id: str, checkout_id: str | None = None
) -> RecordedEvent:
    """The ``ItemsReturned`` of ``return_id`` (of ``checkout_id``, when given). Raises
    :class:`UnknownReturn`."""
    found = store.get_event(id_from_key("return", return_id))
    if found is None or found.type != "ItemsReturned":
        raise UnknownReturn(return_id)
    if checkout_id is not None and found.stream != checkout_stream(checkout_id):
        raise UnknownReturn(return_id)
    return found


async def numbered(
    store: EventStore, runtime: Runtime | None, event: RecordedEvent, timeout: float
) -> tuple[CheckedOut, Numbered]:
    """The checkout recorded as ``event`` and its receipt number; when not given yet, after
    waiting at most ``timeout`` seconds for the ``tills`` processor of ``runtime`` to
    pass it. Raises :class:`ReceiptNotNumbered` (also at once when ``runtime`` has no such
    processor, or a processor it waits on has stopped)."""
    sale = event.decode(CheckedOut)
    found = receipt_number(store, sale.checkout_id)
    if found is None and runtime is not None and NUMBERED_BY in runtime.processors:
        await runtime.wait_for(receipt_of([event]), [NUMBERED_BY], timeout)
        found = receipt_number(store, sale.checkout_id)
    if found is None:
        raise ReceiptNotNumbered(sale.checkout_id)
    return sale, found


async def read_receipt(
    store: EventStore,
    runtime: Runtime | None,
    header: ShopHeader,
    checkout_id: str | None = None,
    return_id: str | None = None,
    timeout: float = 5.0,
) -> PrintedReceipt:
    """The receipt of checkout ``checkout_id``, or of return ``return_id`` (of
    ``checkout_id`` when both are given). Raises :class:`UnknownCheckout`,
    :class:`UnknownReturn`, :class:`ReceiptNotNumbered`."""
    if return_id is None:
        if checkout_id is None:
            raise ValueError("name a checkout or a return")
        sale, found = await numbered(store, runtime, recorded_checkout(store, checkout_id), timeout)
        return checkout_receipt(header, sale, found)
    if checkout_id is not None:
        recorded_checkout(store, checkout_id)  # an unknown checkout is named as such
    returned = recorded_return(store, return_id, checkout_id).decode(ItemsReturned)
    original = recorded_checkout(store, returned.checkout_id)
    sale, found = await numbered(store, runtime, original, timeout)
    return return_receipt(header, returned, sale, found)
