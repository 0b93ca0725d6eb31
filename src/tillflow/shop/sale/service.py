"""Sale's command handlers: decide, then append; retries and repeats answered exactly.

* Catalog changes append to the ``catalog`` stream guarded by its version (a concurrent
  change makes the loser reload and decide again).
* A checkout appends ``CheckedOut`` to its own new stream ``checkout-<id>`` with an id
  derived from the checkout id. A retry — same id, same till and lines — gets the original
  receipt, however much later and whatever the catalog says by then; the same id with other
  content is a :class:`CheckoutConflict` naming the field that differs.
* A checkout with a card is authorized by the terminal first (idempotency key: the checkout
  id), then recorded; a declined card records ``CardDeclined`` on the till's stream and no
  sale (see :mod:`tillflow.shop.sale.card_payments`).
* A checkout or return names its till's open session; a till that was opened once and
  is closed now refuses both (:mod:`tillflow.shop.sale.till_sessions`).
* A return appends ``ItemsReturned`` to the checkout's stream guarded by its version, so two
  concurrent returns can never together return more than was bought.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from tillflow.engine import (
    NO_STREAM,
    AppendRequest,
    ConcurrencyConflict,
    EventIdReused,
    EventStore,
    NewEvent,
    Receipt,
    StoreUnavailable,
    TillflowError,
    id_from_key,
)
from tillflow.engine.store import receipt_of
from tillflow.shop import validation
from tillflow.shop.errors import ProductDiscontinued, UnknownCheckout, UnknownGtin, UnknownProduct
from tillflow.shop.sale import decisions, tenders
from tillflow.shop.sale.card_payments import DEFAULT_CURRENCY, CardPayments, run_sync
from tillflow.shop.sale.catalog import Catalog
from tillflow.shop.sale.catalog_import import ImportCatalog, ImportPlan, decide_import
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductGtin,
    ChangeProductTaxRate,
    Checkout,
    DefineTaxRate,
    DiscontinueProduct,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import (
    CATALOG_EVENTS,
    CATALOG_STREAM,
    CheckedOut,
    ItemsReturned,
    checkout_stream,
)
from tillflow.shop.sale.gtin import WIDTH
from tillflow.shop.sale.payments import PaymentTerminal
from tillflow.shop.sale.till_sessions import TillNotOpen
from tillflow.shop.sale.tills import Tills
from tillflow.shop.sale.upcasters import CHECKED_OUT_VERSION

Clock = Callable[[], datetime]
CATALOG_RETRIES = 20
CATALOG_FRESH_FOR = 0.2
"""Seconds a checkout may be priced from the cached catalog (another process's reprice
or discontinuation counts within this; changes through this service at once)."""
AWAY_PAUSE = 1.0
"""Seconds checkouts are priced from the catalog read before once the database was found
away, before it is asked again (the append then says whether it is back): requests must not
each wait for it."""
STALE = float("-inf")
"""``looked_at`` of a cached catalog that must be read again before the next checkout."""


CATALOG_TYPES: dict[type, str] = {kind: name for name, kind in CATALOG_EVENTS.items()}
"""The registered name of each catalog event class."""


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did: its ``plan`` (the events and counts), the ``receipt`` of its one
    append (``None``: nothing changed, nothing written), the catalog's version after it."""

    plan: ImportPlan
    receipt: Receipt | None
    version: int


def utc_now() -> datetime:
    return datetime.now(UTC)


def checkout_event(checked_out: CheckedOut) -> NewEvent:
    """The event to record for a checkout: its id is derived from the checkout id."""
    return NewEvent(
        "CheckedOut",
        checked_out,
        id=id_from_key("checkout", checked_out.checkout_id),
        schema_version=CHECKED_OUT_VERSION,
    )


class SaleService:
    """Sale's write side over one store. Thread-safe as the store is.

    The catalog is cached as an immutable :class:`Catalog`: readers take the current one
    without a lock (a decision prices every line from that one state); a refresh reads the
    store under ``_refreshing``, one thread at a time, and then publishes a new catalog. A
    thread that waited for another's refresh takes its result when that read began after
    the thread asked (nothing it could have missed)."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock = utc_now,
        terminal: PaymentTerminal | None = None,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.payments = CardPayments(store, terminal, currency)
        self.tills = Tills(store, clock, away=self._store_away)
        self._catalog = Catalog()
        self._refreshing = threading.Lock()
        self._away_until = STALE
        self.away: Callable[[], bool] = lambda: False
        """Whether the database is known to be away now (a serving runtime's health): then
        checkouts are priced from the cached catalog when it knows every product, without
        asking (a server's event loop must not wait on a database that cannot answer)."""

    def _store_away(self) -> bool:
        return self.away()  # looked up at each call: a server sets ``away`` after start-up

    def catalog(self) -> Catalog:
        """The catalog as of now: re-read from the store (one query; blocks behind a
        refresh another thread is making)."""
        return self._refreshed(time.monotonic())

    def _refreshed(self, asked_at: float) -> Catalog:
        """The catalog as read from the store by a read that began after ``asked_at``
        (``time.monotonic()``): the cached one if another thread's refresh began since,
        else a new one read here and published."""
        with self._refreshing:
            catalog = self._catalog
            if catalog.looked_at <= asked_at:
                catalog = catalog.refresh(self.store)
                self._catalog = catalog
            return catalog

    def _catalog_for(self, command: Checkout) -> Catalog:
        """The catalog to price ``command`` with: the cached one, without a lock, when it was
        read less than ``CATALOG_FRESH_FOR`` seconds ago (changes made through this service
        count at once) and knows every product the command names; else refreshed (also for a
        malformed command, which the decision then refuses). With the database away, the
        cached one if it knows every product (for ``AWAY_PAUSE`` seconds, not asking again)."""
        catalog = self._catalog  # one read: the decision sees this state only
        now = time.monotonic()
        try:
            known = all(
                line.product_id in catalog.products
                if line.gtin is None
                else line.gtin.zfill(WIDTH) in catalog.gtins
                for line in command.lines
            )
        except (AttributeError, TypeError):  # no lines, a line that is none, an unhashable id
            known = False
        away = self.away()
        if known and (
            now - catalog.looked_at < CATALOG_FRESH_FOR or now < self._away_until or away
        ):
            return catalog
        try:
            return self._refreshed(now)
        except StoreUnavailable:
            if not known:
                raise
            self._away_until = time.monotonic() + AWAY_PAUSE
            return catalog

    # -- catalog ---------------------------------------------------------------------------

    def _change_catalog(self, decide: Callable[[Catalog], object], event_type: str) -> Receipt:
        """Decide on the catalog as of now and append, guarded by its version (a conflict
        decides again); the cache is then marked stale, so the next checkout sees the change.
        After ``CATALOG_RETRIES`` conflicts, raises the last :class:`ConcurrencyConflict`."""
        conflict: ConcurrencyConflict | None = None
        for _ in range(CATALOG_RETRIES):
            catalog = self.catalog()
            event = decide(catalog)
            try:
                receipt = self.store.append(
                    CATALOG_STREAM, [NewEvent(event_type, event)], catalog.version
                )
            except ConcurrencyConflict as lost:
                conflict = lost
                continue
            self._forget_catalog()
            return receipt
        assert conflict is not None  # CATALOG_RETRIES > 0: every round lost a race
        raise conflict

    def add_product(self, command: AddProduct) -> Receipt:
        return self._change_catalog(lambda c: decisions.decide_add(c, command), "ProductAdded")

    def rename_product(self, command: RenameProduct) -> Receipt:
        return self._change_catalog(lambda c: decisions.decide_rename(c, command), "ProductRenamed")

    def reprice_product(self, command: RepriceProduct) -> Receipt:
        return self._change_catalog(
            lambda c: decisions.decide_reprice(c, command), "ProductRepriced"
        )

    def discontinue_product(self, command: DiscontinueProduct) -> Receipt:
        return self._change_catalog(
            lambda c: decisions.decide_discontinue(c, command), "ProductDiscontinued"
        )

    def change_tax_rate(self, command: ChangeProductTaxRate) -> Receipt:
        """Sell a product at another rate of the table. Raises :class:`UnknownTaxRate`."""
        return self._change_catalog(
            lambda c: decisions.decide_change_tax_rate(c, command), "ProductTaxRateChanged"
        )

    def define_tax_rate(self, command: DefineTaxRate) -> Receipt:
        """Add a rate to the shop's table or resize one (sales from then on use it)."""
        return self._change_catalog(
            lambda c: decisions.decide_define_rate(command), "TaxRateDefined"
        )

    def change_gtin(self, command: ChangeProductGtin) -> Receipt:
        """Give a product a GTIN, another, or none. Raises :class:`DuplicateGtin` when another
        product carries it, :class:`InvalidField` for a bad check digit."""
        return self._change_catalog(
            lambda c: decisions.decide_change_gtin(c, command), "ProductGtinChanged"
        )

    def import_catalog(self, command: ImportCatalog) -> ImportOutcome:
        """Make the catalog say what ``command``'s rows say
        (:func:`~tillflow.shop.sale.catalog_import.decide_import`): every event in one append
        guarded by the catalog's version, so all or nothing; nothing at all when nothing
        changes. Raises :class:`CatalogImportRefused` listing every bad row field, and
        :class:`ConcurrencyConflict` when the catalog changed between the check and the
        append (nothing written: run the import again)."""
        catalog = self.catalog()
        plan = decide_import(catalog, command)
        if not plan.events:
            return ImportOutcome(plan, None, catalog.version)
        events = [NewEvent(CATALOG_TYPES[type(event)], event) for event in plan.events]
        receipt = self.store.append(CATALOG_STREAM, events, catalog.version)
        self._forget_catalog()
        return ImportOutcome(plan, receipt, receipt.streams[CATALOG_STREAM])

    def _forget_catalog(self) -> None:
        """Make the next checkout read the catalog again (after a change appended here)."""
        with self._refreshing:  # after any refresh that began before the append
            self._catalog = dataclasses.replace(self._catalog, looked_at=STALE)

    # -- checkouts -------------------------------------------------------------------------

    def _decide(self, command: Checkout) -> CheckedOut | tuple[Receipt, CheckedOut]:
        """The one pricing rule of every checkout path: ``command`` decided on the catalog
        :meth:`_catalog_for` gives it, at the service's clock — or, when the catalog refuses
        a product the command names (discontinued or gone since) and the checkout was
        already recorded, the retry's answer: the original receipt and checkout."""
        try:
            decided = decisions.decide_checkout(self._catalog_for(command), command, self.clock())
            session_id = self.tills.session_for(command.till_id)
        except (UnknownProduct, UnknownGtin, ProductDiscontinued, TillNotOpen):
            if not self.store.stream_version(checkout_stream(command.checkout_id)):
                raise
            return self._repeat_recorded(command)
        if session_id is None:
            return decided
        return msgspec.structs.replace(decided, session_id=session_id)

    def checkout(self, command: Checkout) -> Receipt:
        """Record a sale; see the module docstring. Raises :class:`InvalidField`,
        :class:`UnknownProduct`, :class:`ProductDiscontinued`, :class:`CheckoutConflict`, and
        for a card :class:`CardDeclined`, :class:`TerminalTimeout`. A card's terminal call runs
        on an event loop of its own: from ``async`` code, call :meth:`checkout_async`."""
        return self.checkout_recorded(command)[0]

    def checkout_recorded(self, command: Checkout) -> tuple[Receipt, CheckedOut]:
        """:meth:`checkout`, also returning the checkout as recorded (for a retry: as it was
        first recorded, whatever the catalog says now)."""
        decided = self._decide(command)
        if isinstance(decided, tuple):
            return decided
        if tenders.has_card(decided.tenders):
            decided = run_sync(self._paid(command, decided))
            if isinstance(decided, tuple):
                return decided
        try:
            receipt = self.store.append(
                checkout_stream(command.checkout_id), [checkout_event(decided)], NO_STREAM
            )
        except (ConcurrencyConflict, EventIdReused):
            return self._repeat_recorded(command)
        return receipt, decided

    async def checkout_async(self, command: Checkout) -> Receipt:
        """:meth:`checkout` without blocking the event loop (appends share commits)."""
        receipt, _ = await self.checkout_recorded_async(command)
        return receipt

    async def checkout_recorded_async(self, command: Checkout) -> tuple[Receipt, CheckedOut]:
        """:meth:`checkout_recorded` without blocking the event loop: the same decision, the
        same append, the same answer to a retry. The card terminal is awaited: a slow
        authorization holds no thread and no lock."""
        decided = self._decide(command)
        if isinstance(decided, tuple):
            return decided
        if tenders.has_card(decided.tenders):
            decided = await self._paid(command, decided)
            if isinstance(decided, tuple):
                return decided
        try:
            receipt = await self.store.append_async(
                checkout_stream(command.checkout_id), [checkout_event(decided)], NO_STREAM
            )
        except (ConcurrencyConflict, EventIdReused):
            return self._repeat_recorded(command)
        return receipt, decided

    def checkout_many(self, commands: Sequence[Checkout]) -> list[Receipt | TillflowError]:
        """Several checkouts sharing transactions; per command its receipt or its refusal (a
        malformed command is refused alone), each decided as :meth:`checkout` decides it.
        Raises :class:`InvalidField` naming ``commands`` when ``commands`` is not a list or
        tuple."""
        if not isinstance(commands, (list, tuple)):
            raise validation.invalid("commands", commands, "must be a list of Checkout commands")
        outcomes: list[Receipt | TillflowError | None] = []
        requests: list[AppendRequest] = []
        for command in commands:
            try:
                decided = self._decide(command)
            except TillflowError as refusal:
                outcomes.append(refusal)
                continue
            if isinstance(decided, tuple):
                outcomes.append(decided[0])
                continue
            if tenders.has_card(decided.tenders):  # the terminal first: alone
                try:
                    outcomes.append(self.checkout(command))
                except TillflowError as refusal:
                    outcomes.append(refusal)
                continue
            event = checkout_event(decided)
            outcomes.append(None)
            requests.append(AppendRequest(checkout_stream(command.checkout_id), [event], NO_STREAM))
        appended = iter(self.store.append_many(requests))
        results: list[Receipt | TillflowError] = []
        for command, outcome in zip(commands, outcomes, strict=True):
            if outcome is not None:
                results.append(outcome)
                continue
            result = next(appended)
            if isinstance(result, (ConcurrencyConflict, EventIdReused)):
                try:
                    result = self._repeat(command)
                except TillflowError as refusal:
                    result = refusal
            results.append(result)
        return results

    async def _paid(
        self, command: Checkout, decided: CheckedOut
    ) -> CheckedOut | tuple[Receipt, CheckedOut]:
        """``decided`` (which has a card) authorized by the terminal — or the answer it
        was given before: its decline again, or the recorded checkout and receipt."""
        found = tenders.card_of(decided.tenders)
        assert found is not None  # called for a checkout with a card
        self.payments.declined_before(command, found[0])
        if self.store.stream_version(checkout_stream(command.checkout_id)):
            return self._repeat_recorded(command)
        return await self.payments.authorized(command, decided)

    def _repeat(self, command: Checkout) -> Receipt:
        return self._repeat_recorded(command)[0]

    def _repeat_recorded(self, command: Checkout) -> tuple[Receipt, CheckedOut]:
        history = self.store.read_stream(checkout_stream(command.checkout_id), 0, 1)
        if not history:  # pragma: no cover - the conflict said the stream exists
            raise UnknownCheckout(command.checkout_id)
        recorded = history[0].decode(CheckedOut)
        decisions.same_checkout(recorded, command)
        return receipt_of(history), recorded

    # -- returns ---------------------------------------------------------------------------

    def return_items(self, command: ReturnItems) -> Receipt:
        """Record units brought back, refunded to the original tenders (a card's part through
        the terminal first, keyed by the return id: call it where no event loop runs). Raises
        :class:`UnknownCheckout`, :class:`ReturnExceedsPurchase`, :class:`InvalidField`,
        :class:`CheckoutConflict`, :class:`RefundExceedsPayment`, :class:`TerminalTimeout`;
        after ``CATALOG_RETRIES`` lost races for the checkout's stream, the last
        :class:`ConcurrencyConflict` (what was expected and what was found)."""
        validation.of_type("command", command, ReturnItems)
        validation.identifier("return_id", command.return_id)
        validation.identifier("checkout_id", command.checkout_id)
        decisions.merged_lines(command.lines)
        event_id = id_from_key("return", command.return_id)
        conflict: ConcurrencyConflict | None = None
        for _ in range(CATALOG_RETRIES):
            repeated = self._recorded_return(event_id, command)
            if repeated is not None:
                return repeated
            history = self.store.read_stream(checkout_stream(command.checkout_id))
            if not history or history[0].type != "CheckedOut":
                raise UnknownCheckout(command.checkout_id)
            earlier = [e.decode(ItemsReturned) for e in history if e.type == "ItemsReturned"]
            bought = history[0].decode(CheckedOut)
            returned = decisions.decide_return(bought, earlier, command, self.clock())
            returned = msgspec.structs.replace(
                returned,
                till_id=bought.till_id,
                session_id=self.tills.session_for(bought.till_id),
            )
            if tenders.has_card(returned.refunds):  # back to the card before it is recorded
                returned = run_sync(self.payments.refunded(returned))
            try:
                return self.store.append(
                    checkout_stream(command.checkout_id),
                    [NewEvent("ItemsReturned", returned, id=event_id)],
                    history[-1].version,
                )
            except ConcurrencyConflict as lost:
                conflict = lost
            except EventIdReused:
                pass  # the same return id was recorded meanwhile: the next check answers it
        repeated = self._recorded_return(event_id, command)  # a race lost to this very return
        if repeated is not None:
            return repeated
        assert conflict is not None  # every round that did not return lost a race
        raise conflict

    def _recorded_return(self, event_id: bytes, command: ReturnItems) -> Receipt | None:
        """The original receipt when ``command`` repeats a recorded return (``event_id``),
        else ``None``. Raises :class:`CheckoutConflict` if it repeats it with other content."""
        previous = self.store.get_event(event_id)
        if previous is None:
            return None
        decisions.same_return(previous.decode(ItemsReturned), command)
        return receipt_of([previous])
