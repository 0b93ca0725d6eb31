"""The shop assembled: Sale and Inventory write sides, Inventory's processor, the report.

::

    till ──Checkout──► SaleService ──CheckedOut──► log ──► inventory (processor)
                                                            │ ProductTaken / StockShortfall
    manager ──ReceiveStock/CountStock──► InventoryService ──┤ (stock-<product> streams)
                                                            ▼
                                     reporting (after=["inventory"]) ──► report rows
    till ──OpenTill/CloseTill──► SaleService.tills ──► till-<id> ──► tills (processor)
                                                                     └─► X / Z reports,
                                                                         receipt numbers
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tillflow.engine import EventRegistry, EventStore, Processor, Runtime
from tillflow.engine.errors import RetiredProcessor
from tillflow.engine.parking import DEAD_LETTER_EVENTS
from tillflow.shop.inventory.events import INVENTORY_EVENTS
from tillflow.shop.inventory.processor import inventory_processor
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.receipts.handover import RETIRED
from tillflow.shop.receipts.numbering import NUMBERED_BY
from tillflow.shop.reporting.projection import reporting_processor
from tillflow.shop.reporting.queries import ReportReader
from tillflow.shop.sale.events import SALE_EVENTS
from tillflow.shop.sale.payments import PaymentTerminal
from tillflow.shop.sale.service import Clock, SaleService, utc_now
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal
from tillflow.shop.sale.upcasters import SALE_UPCASTERS
from tillflow.shop.tills.projection import tills_processor
from tillflow.shop.tills.queries import TillReader

REGISTRY = EventRegistry({**SALE_EVENTS, **INVENTORY_EVENTS, **DEAD_LETTER_EVENTS}, SALE_UPCASTERS)
"""Every event type the shop records, with its class, and how older versions read."""


BEHIND_THE_SALE_LINGER: Final = 0.05
"""Seconds the cash-up, which also gives the receipt numbers, waits between batches
(``Processor.linger``): it is not on the path from a sale to the report, and a reader of what
it keeps waits for it (a receipt for its number, an X report for the caller's sales), which
hurries it."""


def shop_processors(inventory_batch: int = 3000, reporting_batch: int = 5000) -> list[Processor]:
    """Inventory, then the report behind its barrier; the tills' cash-up and receipt numbers."""
    return [
        inventory_processor(inventory_batch),
        reporting_processor(reporting_batch),
        tills_processor(reporting_batch, linger=BEHIND_THE_SALE_LINGER),
    ]


@dataclass
class Shop:
    """The write sides and the report over one store. Cards go through ``terminal``: a
    :class:`SimulatedTerminal` that approves every card unless given one (``None``: the
    shop takes no cards)."""

    store: EventStore
    clock: Clock = utc_now
    processors: list[Processor] = field(default_factory=shop_processors)
    terminal: PaymentTerminal | None = field(default_factory=SimulatedTerminal)

    def __post_init__(self) -> None:
        self.sale = SaleService(self.store, self.clock, self.terminal)
        self.inventory = InventoryService(self.store)
        self.report = ReportReader(self.store)
        self.tills = TillReader(self.store)

    def runtime(self, run: list[str] | None = None) -> Runtime:
        """A runtime for the shop's processors (all, or those named in ``run``). Raises
        :class:`RetiredProcessor` for a name of an earlier version's processor."""
        for name in run or ():
            if name == RETIRED:
                raise RetiredProcessor(name, NUMBERED_BY)
        return Runtime(self.store, self.processors, run=run)
