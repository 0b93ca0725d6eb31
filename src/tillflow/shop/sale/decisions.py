"""Sale's rules as pure functions: a command and what is known → the event, or a refusal.

A refusal is a :class:`~tillflow.engine.TillflowError` naming the field and the value whatever
a caller passed — a value of another type, ``None``, a line that is no line, another command —
never a ``TypeError`` or ``AttributeError`` from the rule itself."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime

from tillflow.shop import validation
from tillflow.shop.errors import (
    CheckoutConflict,
    DuplicateGtin,
    InvalidField,
    ProductDiscontinued,
    ProductExists,
    ReturnExceedsPurchase,
    UnknownGtin,
    UnknownProduct,
)
from tillflow.shop.sale import gtin as gtins
from tillflow.shop.sale import tenders
from tillflow.shop.sale.catalog import Catalog, Product
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductGtin,
    ChangeProductTaxRate,
    Checkout,
    DefineTaxRate,
    DiscontinueProduct,
    LineRequest,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.events import (
    CardDeclined,
    CheckedOut,
    ItemsReturned,
    ProductAdded,
    ProductGtinChanged,
    ProductRenamed,
    ProductRepriced,
    ProductTaxRateChanged,
    TaxRateDefined,
)
from tillflow.shop.sale.events import (
    ProductDiscontinued as ProductDiscontinuedEvent,
)
from tillflow.shop.sale.tax_rates import basis_points, rate_name, returned_line, sold_line


def _aware(field: str, at: datetime | None, now: datetime) -> datetime:
    """``at`` in UTC (``now`` when it is ``None``). Raises :class:`InvalidField` naming
    ``field`` and the value when it is not a date and time, has no time zone, or falls
    outside years 1–9999 once in UTC (``0001-01-01T00:30+01:00`` is year 0 in UTC)."""
    if at is None:
        return now
    if not isinstance(at, datetime):
        raise validation.invalid(field, at, "must be a date and time")
    try:
        offset = at.utcoffset()
    except (TypeError, ValueError, ArithmeticError) as error:  # a tzinfo answering nonsense
        raise InvalidField(
            field, at.replace(tzinfo=None).isoformat(), f"its time zone gives no offset: {error}"
        ) from error
    if offset is None:
        raise InvalidField(field, at.isoformat(), "must carry a time zone (e.g. Z or +01:00)")
    try:
        return at.astimezone(UTC)
    except OverflowError as error:
        raise InvalidField(
            field, at.isoformat(), "out of range once in UTC (years 1 to 9999 only)"
        ) from error


def merged_lines(
    lines: Sequence[LineRequest],
    field: str = "lines",
    known: Container[str] = (),
    barcodes: Mapping[str, str] | None = None,
) -> list[tuple[str, int]]:
    """Validate lines and merge repeats of a product (first-seen order). Ids in ``known``
    (the catalog's) are valid by construction and skip the pattern check. A line is anything
    with ``product_id`` and ``quantity`` (a :class:`LineRequest`), and may name its product
    by ``gtin`` instead, which ``barcodes`` (14-digit GTIN → product id) resolves — the one
    place a barcode becomes a product; without ``barcodes`` (returns) a GTIN is refused.
    Raises :class:`InvalidField` naming ``field`` or ``field[index]`` and what in it is
    wrong (both or neither of ``product_id`` and ``gtin``, a bad check digit),
    :class:`UnknownGtin` naming ``field[index].gtin``."""
    if not isinstance(lines, (list, tuple)):
        raise validation.invalid(field, lines, "must be a list of lines")
    if not lines:
        raise InvalidField(field, [], "must hold at least one line")
    if len(lines) > validation.MAX_LINES:
        raise InvalidField(field, len(lines), f"at most {validation.MAX_LINES} lines")
    merged: dict[str, int] = {}
    most = validation.MAX_QUANTITY
    for index, line in enumerate(lines):
        try:
            product_id, quantity = line.product_id, line.quantity
        except AttributeError as error:
            raise validation.invalid(
                f"{field}[{index}]", line, "must be a line (product_id and quantity)"
            ) from error
        scanned = getattr(line, "gtin", None)
        if scanned is not None:
            product_id = _scanned(f"{field}[{index}]", product_id, scanned, barcodes)
        elif product_id is None:
            raise InvalidField(f"{field}[{index}].product_id", None, "required (or a gtin)")
        elif type(product_id) is not str or product_id not in known:  # unhashable: not looked up
            validation.identifier(f"{field}[{index}].product_id", product_id)
        if type(quantity) is not int or not 0 < quantity <= most:  # bool, float: refused
            validation.quantity(f"{field}[{index}].quantity", quantity)
        total = merged.get(product_id, 0) + quantity
        if total > most:
            raise InvalidField(
                f"{field}[{index}].quantity",
                total,
                f"product {product_id!r} totals more than {most} units",
            )
        merged[product_id] = total
    return list(merged.items())


def _scanned(
    field: str, product_id: object, scanned: object, barcodes: Mapping[str, str] | None
) -> str:
    """The product id a line's GTIN ``scanned`` names in ``barcodes``."""
    if product_id is not None:
        raise InvalidField(field, scanned, "give product_id or gtin, not both")
    if barcodes is None:
        raise InvalidField(f"{field}.gtin", scanned, "name the product by product_id here")
    found = barcodes.get(gtins.normalised(f"{field}.gtin", scanned))
    if found is None:
        assert isinstance(scanned, str)  # normalised() refuses anything else
        raise UnknownGtin(scanned, f"{field}.gtin")
    return found


def _sellable(catalog: Catalog, product_id: str, field: str) -> Product:
    product = catalog.products.get(product_id)
    if product is None:
        raise UnknownProduct(product_id, field)
    if product.discontinued:
        raise ProductDiscontinued(product_id, field)
    return product


def decide_checkout(catalog: Catalog, command: Checkout, now: datetime) -> CheckedOut:
    """The ``CheckedOut`` for ``command`` at catalog prices, settled with its tenders (a
    card's authorization is not in it yet). Never refused for stock."""
    if not isinstance(command, Checkout):
        raise validation.invalid("command", command, "must be a Checkout")
    validation.identifier("checkout_id", command.checkout_id)
    validation.identifier("till_id", command.till_id)
    at = _aware("at", command.at, now)
    lines = []
    products = catalog.products
    merged = merged_lines(command.lines, known=products, barcodes=catalog.gtins)
    for index, (product_id, quantity) in enumerate(merged):
        product = products.get(product_id)
        if product is None or product.discontinued:
            product = _sellable(catalog, product_id, f"lines[{index}].product_id")
        lines.append(sold_line(product, quantity, catalog.rates))
    total = sum(line.line_total for line in lines)
    paid, change = tenders.settle(total, command.tenders)
    return CheckedOut(command.checkout_id, command.till_id, at, lines, total, paid, change)


def same_checkout(recorded: CheckedOut | CardDeclined, command: Checkout) -> None:
    """Raise :class:`CheckoutConflict` unless ``command`` is a retry of ``recorded`` (a
    checkout, or a checkout whose card was declined): same till, lines, time, tenders. Its
    barcodes resolve as they did when it was recorded (by its lines' GTINs)."""
    if recorded.till_id != command.till_id:
        raise CheckoutConflict("checkout_id", command.checkout_id, "till_id")
    sold = {line.gtin: line.product_id for line in recorded.lines if line.gtin is not None}
    try:
        wanted = merged_lines(command.lines, barcodes=sold)
    except UnknownGtin:
        raise CheckoutConflict("checkout_id", command.checkout_id, "lines") from None
    if [(line.product_id, line.quantity) for line in recorded.lines] != wanted:
        raise CheckoutConflict("checkout_id", command.checkout_id, "lines")
    if command.at is not None and _aware("at", command.at, recorded.at) != recorded.at:
        raise CheckoutConflict("checkout_id", command.checkout_id, "at")
    asked, _ = tenders.settle(recorded.total, command.tenders)
    paid = tenders.paid_with(recorded.total, recorded.tenders)
    if tenders.as_asked(asked) != tenders.as_asked(paid):
        raise CheckoutConflict("checkout_id", command.checkout_id, "tenders")


def decide_return(
    checkout: CheckedOut,
    earlier: Sequence[ItemsReturned],
    command: ReturnItems,
    now: datetime,
) -> ItemsReturned:
    """The ``ItemsReturned`` for ``command``: never more than bought, net of earlier returns.
    Refunds at the price paid, to the original tenders (a card part is not refunded yet)."""
    validation.of_type("command", command, ReturnItems)
    validation.identifier("return_id", command.return_id)
    at = _aware("at", command.at, now)
    bought = {line.product_id: line for line in checkout.lines}
    returned: dict[str, int] = {}
    for previous in earlier:
        for line in previous.lines:
            returned[line.product_id] = returned.get(line.product_id, 0) + line.quantity
    lines = []
    for index, (product_id, quantity) in enumerate(merged_lines(command.lines)):
        sold = bought.get(product_id)
        if sold is None:
            raise InvalidField(
                f"lines[{index}].product_id",
                product_id,
                f"checkout {checkout.checkout_id!r} did not sell this product",
            )
        returnable = sold.quantity - returned.get(product_id, 0)
        if quantity > returnable:
            raise ReturnExceedsPurchase(checkout.checkout_id, product_id, quantity, returnable)
        lines.append(returned_line(sold, quantity, returned.get(product_id, 0)))
    refund = sum(line.refund for line in lines)
    refunds = tenders.split_refund(
        checkout.checkout_id,
        tenders.paid_with(checkout.total, checkout.tenders),
        [tenders.refunded_with(previous.refund_total, previous.refunds) for previous in earlier],
        refund,
    )
    return ItemsReturned(command.return_id, checkout.checkout_id, at, lines, refund, refunds)


def same_return(recorded: ItemsReturned, command: ReturnItems) -> None:
    """Raise :class:`CheckoutConflict` unless ``command`` is a retry of ``recorded`` (its
    ``at`` is not compared, but must be a valid time: :class:`InvalidField` otherwise)."""
    if recorded.checkout_id != command.checkout_id:
        raise CheckoutConflict("return_id", command.return_id, "checkout_id")
    _aware("at", command.at, recorded.at)
    wanted = merged_lines(command.lines)
    if [(line.product_id, line.quantity) for line in recorded.lines] != wanted:
        raise CheckoutConflict("return_id", command.return_id, "lines")


def decide_add(catalog: Catalog, command: AddProduct) -> ProductAdded:
    validation.of_type("command", command, AddProduct)
    product_id = validation.identifier("product_id", command.product_id)
    if product_id in catalog.products:
        raise ProductExists(product_id)
    return ProductAdded(
        product_id,
        validation.name("name", command.name),
        validation.price("price", command.price),
        gtin=_free_gtin(catalog, "gtin", command.gtin, product_id),
        tax_rate=rate_name("tax_rate", command.tax_rate, catalog.rates),
    )


def _free_gtin(catalog: Catalog, field: str, value: object, product_id: str) -> str | None:
    """``value`` as a 14-digit GTIN (or ``None``) that no product but ``product_id`` carries.
    Raises :class:`InvalidField` (not a GTIN), :class:`DuplicateGtin` naming ``field``."""
    normal = gtins.optional(field, value)
    held_by = catalog.gtins.get(normal) if normal is not None else None
    if held_by is not None and held_by != product_id:
        assert isinstance(value, str)  # normalised
        raise DuplicateGtin(value, held_by, field)
    return normal


def _existing(catalog: Catalog, product_id: str) -> Product:
    validation.identifier("product_id", product_id)
    return _sellable(catalog, product_id, "product_id")


def decide_rename(catalog: Catalog, command: RenameProduct) -> ProductRenamed:
    validation.of_type("command", command, RenameProduct)
    _existing(catalog, command.product_id)
    return ProductRenamed(command.product_id, validation.name("name", command.name))


def decide_reprice(catalog: Catalog, command: RepriceProduct) -> ProductRepriced:
    validation.of_type("command", command, RepriceProduct)
    _existing(catalog, command.product_id)
    return ProductRepriced(command.product_id, validation.price("price", command.price))


def decide_discontinue(catalog: Catalog, command: DiscontinueProduct) -> ProductDiscontinuedEvent:
    validation.of_type("command", command, DiscontinueProduct)
    _existing(catalog, command.product_id)
    return ProductDiscontinuedEvent(command.product_id)


def decide_change_gtin(catalog: Catalog, command: ChangeProductGtin) -> ProductGtinChanged:
    """The product's new GTIN (or none). Raises :class:`DuplicateGtin` when another product
    carries it, :class:`InvalidField` for a GTIN with a wrong check digit."""
    validation.of_type("command", command, ChangeProductGtin)
    _existing(catalog, command.product_id)
    return ProductGtinChanged(
        command.product_id, _free_gtin(catalog, "gtin", command.gtin, command.product_id)
    )


def decide_change_tax_rate(
    catalog: Catalog, command: ChangeProductTaxRate
) -> ProductTaxRateChanged:
    """The product sold at another rate of the table from now on. Raises
    :class:`UnknownTaxRate` naming ``tax_rate``, :class:`UnknownProduct`,
    :class:`ProductDiscontinued`."""
    validation.of_type("command", command, ChangeProductTaxRate)
    _existing(catalog, command.product_id)
    return ProductTaxRateChanged(
        command.product_id, rate_name("tax_rate", command.tax_rate, catalog.rates)
    )


def decide_define_rate(command: DefineTaxRate) -> TaxRateDefined:
    """A rate added to the table or resized. Raises :class:`InvalidField` naming ``rate``
    or ``basis_points``."""
    validation.of_type("command", command, DefineTaxRate)
    return TaxRateDefined(
        validation.identifier("rate", command.rate),
        basis_points("basis_points", command.basis_points),
    )
