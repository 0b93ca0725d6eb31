"""Commands for scripts: ``checkout``, ``receive``, ``count`` and ``reorder-point`` write
straight to the store file and print the receipt token on stdout (a summary goes to stderr),
so a script can do::

    token=$(tillflow checkout --till till-1 apple=2 pear=1)
    curl -H "Authorization: Bearer $VIEWER" "http://127.0.0.1:8000/report?wait_for=$token"

Exit codes: 0 recorded, 1 refused by the shop (the reason on one line), 2 bad usage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from tillflow.cli.common import DatabaseOption, errors, fail, open_existing
from tillflow.engine import Receipt, TillflowError, format_id, new_event_id
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop.assembly import Shop
from tillflow.shop.errors import UnknownProduct
from tillflow.shop.inventory.commands import CountStock, ReceiveStock, SetReorderPoint
from tillflow.shop.inventory.events import stock_stream
from tillflow.shop.money import money
from tillflow.shop.sale.commands import Checkout, LineRequest
from tillflow.shop.sale.events import CheckedOut, checkout_stream
from tillflow.shop.sale.tenders import CARD, CASH, Tender


def _line(text: str) -> LineRequest:
    """``PRODUCT=QUANTITY``, or ``@GTIN=QUANTITY`` for a product by its barcode."""
    product_id, sign, quantity = text.partition("=")
    if not sign or not product_id or not quantity.strip().lstrip("-").isdigit():
        raise fail(f"line {text!r}: write PRODUCT=QUANTITY or @GTIN=QUANTITY, e.g. apple=2", 2)
    product_id = product_id.strip()
    if product_id.startswith("@"):
        return LineRequest(None, int(quantity), gtin=product_id[1:])
    return LineRequest(product_id, int(quantity))


def _tenders(cash: int | None, card: str | None) -> list[Tender] | None:
    """The tenders ``--cash CENTS`` and ``--card CENTS:REFERENCE`` ask for (``None``: no
    option, the exact total in cash). The shop's tender rules check the amounts."""
    tenders = []
    if card is not None:
        cents, sign, reference = card.partition(":")
        if not sign or not cents.strip().lstrip("-").isdigit():
            raise fail(f"--card {card!r}: write CENTS:REFERENCE, e.g. 1499:tok-1", 2)
        tenders.append(Tender(CARD, int(cents), reference.strip()))
    if cash is not None:
        tenders.append(Tender(CASH, cash))
    return tenders or None


def checkout(
    lines: Annotated[
        list[str],
        typer.Argument(
            help="PRODUCT=QUANTITY or @GTIN=QUANTITY (a barcode), one or more "
            "(e.g. apple=2 @4006381333931=1)."
        ),
    ],
    till: Annotated[str, typer.Option("--till", help="The till ringing it up.")],
    checkout_id: Annotated[
        str | None,
        typer.Option("--id", help="The checkout id (idempotency key); default: a new one."),
    ] = None,
    cash: Annotated[
        int | None,
        typer.Option(
            "--cash",
            help="Cents handed over in cash (the change is printed); at least what is due.",
        ),
    ] = None,
    card: Annotated[
        str | None,
        typer.Option(
            "--card",
            help="CENTS:REFERENCE charged to a card, exactly its part (e.g. 1499:tok-1), through "
            "a simulated terminal that approves every card. With --cash: split. Neither: the "
            "exact total in cash.",
        ),
    ] = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Ring up a checkout; print its receipt token. Running it again with the same --id,
    lines and tenders records nothing new and prints the same token."""
    requested = [_line(text) for text in lines]
    tenders = _tenders(cash, card)
    chosen = checkout_id or format_id(new_event_id())
    store = open_existing(database)
    try:
        shop = Shop(store)
        try:
            receipt = shop.sale.checkout(Checkout(chosen, till, requested, tenders=tenders))
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        [recorded] = store.read_stream(checkout_stream(chosen), 0, 1)
        sale = recorded.decode(CheckedOut)
        errors.print(
            f"checkout {chosen} recorded: {len(sale.lines)} line(s), total "
            f"{money(sale.total)}, paid {_paid(sale)} (positions {receipt.positions})",
            highlight=False,
        )
        typer.echo(encode_receipt(receipt))
    finally:
        store.close()


def _paid(sale: CheckedOut) -> str:
    """How ``sale`` was paid, e.g. ``card 1.20 + cash 2.00, change 0.80``."""
    paid = " + ".join(
        f"{tender.type} {money(tender.handed if tender.type == CASH else tender.amount)}"
        for tender in sale.tenders
    )
    return f"{paid}, change {money(sale.change)}" if sale.change else paid


def _change_stock(
    database: str, product_id: str, what: str, record: Callable[[Shop], Receipt]
) -> None:
    """Record a stock change of a product in the catalog; print its receipt token."""
    store = open_existing(database)
    try:
        shop = Shop(store)
        try:
            if product_id not in shop.sale.catalog().products:
                raise UnknownProduct(product_id)
            receipt = record(shop)
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        level = shop.inventory.level(product_id)
        low = f", below its reorder point {level.reorder_point:,}" if level.low else ""
        errors.print(
            f"{what} recorded: stock now {level.stock:,}{low} "
            f"(version {receipt.streams[stock_stream(product_id)]})",
            highlight=False,
        )
        typer.echo(encode_receipt(receipt))
    finally:
        store.close()


def receive(
    product_id: Annotated[str, typer.Argument(help="The product delivered.")],
    quantity: Annotated[int, typer.Argument(help="Units delivered.")],
    delivery_id: Annotated[
        str | None, typer.Option(help="Makes a retry harmless (the same id records once).")
    ] = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Put a delivery on the shelf; print its receipt token. Running it again with the same
    --delivery-id prints the same token and records nothing."""
    command = ReceiveStock(product_id, quantity, delivery_id)
    _change_stock(
        database,
        product_id,
        f"delivery of {quantity:,} {product_id}",
        lambda shop: shop.inventory.receive(command),
    )


def count(
    product_id: Annotated[str, typer.Argument(help="The product counted.")],
    counted: Annotated[int, typer.Argument(help="Units on the shelf, counted.")],
    count_id: Annotated[
        str | None,
        typer.Option(help="Makes a retry harmless (the same id records once, never re-applied)."),
    ] = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Record a stock-take; print its receipt token. Running it again with the same
    --count-id prints the same token and changes nothing (a count is absolute: without an
    id, a retry would undo what happened since)."""
    command = CountStock(product_id, counted, count_id)
    _change_stock(
        database, product_id, f"count of {product_id}", lambda shop: shop.inventory.count(command)
    )


def reorder_point(
    product_id: Annotated[str, typer.Argument(help="The product.")],
    point: Annotated[
        int, typer.Argument(help="Low stock below this many units (0: no reorder point).")
    ],
    change_id: Annotated[
        str | None,
        typer.Option(help="Makes a retry harmless (the same id records once, never re-applied)."),
    ] = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Set a product's reorder point; print its receipt token. Stock falling below it records
    one LowStock alert (a point above the stock is one at once). Setting the point it already
    has records nothing; with the same --change-id, a repeat prints the same token."""
    command = SetReorderPoint(product_id, point, change_id)
    _change_stock(
        database,
        product_id,
        f"reorder point {point:,} of {product_id}",
        lambda shop: shop.inventory.set_reorder_point(command),
    )
