"""``tillflow receipt ID``: print a checkout's receipt (or a return's, ``--return``) as the
48-column text a thermal printer takes, or as HTML (``--html``). The shop's name and time
zone come from ``TILLFLOW_SHOP_NAME`` and ``TILLFLOW_TIMEZONE``, as for the server.

Receipt numbers are given by the cash-up's processor (``tills``) of a running ``tillflow serve`` or
``tillflow worker``: a checkout not numbered yet is waited for, ``--timeout`` seconds at
most, then refused (exit 1) naming it — never printed without its number."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tillflow.cli.common import DatabaseOption, fail, open_existing
from tillflow.engine import TillflowError
from tillflow.service.bootstrap import ConfigurationError
from tillflow.service.settings import load_settings, shop_header
from tillflow.shop.assembly import Shop
from tillflow.shop.receipts.html import render_html
from tillflow.shop.receipts.lookup import read_receipt
from tillflow.shop.receipts.model import PrintedReceipt, ShopHeader
from tillflow.shop.receipts.text import render_text


async def _read(
    shop: Shop, header: ShopHeader, checkout_id: str, return_id: str | None, timeout: float
) -> PrintedReceipt:
    async with shop.runtime(run=[]) as runtime:  # runs nothing: waits on the checkpoints
        return await read_receipt(shop.store, runtime, header, checkout_id, return_id, timeout)


def receipt(
    checkout_id: Annotated[str, typer.Argument(help="The checkout's id.")],
    return_id: Annotated[
        str | None,
        typer.Option("--return", help="Print the receipt of this return of the checkout."),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Print an HTML page instead.")] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0, max=60, help="Seconds to wait at most for the receipt number."
        ),
    ] = 5.0,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Print a checkout's receipt (48 columns, for an 80 mm thermal printer): shop, till,
    time, receipt number, lines, VAT per rate, tenders and change."""
    try:
        header = shop_header(load_settings())
    except ConfigurationError as error:
        raise fail(str(error), 2) from None
    store = open_existing(database)
    try:
        try:
            printed = asyncio.run(_read(Shop(store), header, checkout_id, return_id, timeout))
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        typer.echo(render_html(printed) if html else render_text(printed), nl=False)
    finally:
        store.close()
