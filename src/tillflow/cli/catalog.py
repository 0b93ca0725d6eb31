"""``tillflow catalog import FILE.csv``: import or update the catalog from a CSV file
(the format: :mod:`tillflow.service.catalog_csv`), with a progress bar on stderr.

All or nothing: every bad field of every row is listed on stderr (``line 7: gtin=…: …``)
and nothing is written (exit 1). A good file is written in one append; its receipt token
goes to stdout (nothing when the file changed nothing, so running it again prints nothing
and writes nothing). Exit codes: 0 imported, 1 refused, 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import rich.progress
import typer

from tillflow.cli.common import DatabaseOption, errors, fail, open_existing
from tillflow.engine import ConcurrencyConflict, TillflowError
from tillflow.service.catalog_csv import decoded, read_catalog
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop.assembly import Shop
from tillflow.shop.errors import CatalogImportRefused
from tillflow.shop.sale.catalog_import import ImportCatalog

app = typer.Typer(
    help="The catalog: import or update it from a CSV file.",
    no_args_is_help=True,
    add_completion=False,
)


def _read(file: Path) -> ImportCatalog:
    """The import ``file`` asks for, read with a progress bar (bytes read) on stderr."""
    try:
        with rich.progress.open(
            file, "rb", description=f"reading {file.name}", console=errors, transient=True
        ) as lines:
            return read_catalog(decoded(lines))
    except OSError as error:
        raise fail(f"{file}: {error.strerror or error}", 2) from None


def _refused(refused: CatalogImportRefused) -> typer.Exit:
    for problem in refused.problems:
        errors.print(f"  {problem}", highlight=False, markup=False)
    return fail(f"{len(refused.problems)} bad field(s) in the file; nothing imported", 1)


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="A CSV file with a header row: product_id,name,price (minor units) and "
            "optionally gtin and tax_rate.",
            dir_okay=False,
        ),
    ],
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Import or update the catalog from FILE: new products are added, changed names,
    prices and GTINs recorded, unchanged rows write nothing. All or nothing: every bad row
    is listed with its line and field, and nothing is written. Prints the receipt token."""
    store = open_existing(database)
    try:
        try:
            command = _read(file)
            with errors.status(f"checking {len(command.rows):,} row(s) and writing"):
                outcome = Shop(store).sale.import_catalog(command)
        except CatalogImportRefused as refused:
            raise _refused(refused) from None
        except ConcurrencyConflict:
            raise fail("the catalog changed meanwhile; nothing imported: run it again", 1) from None
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        plan = outcome.plan
        errors.print(
            f"{file.name}: {plan.added:,} added, {plan.renamed:,} renamed, "
            f"{plan.repriced:,} repriced, {plan.gtins_changed:,} GTIN(s) changed, "
            f"{plan.retaxed:,} tax rate(s) changed, "
            f"{plan.unchanged:,} unchanged (catalog version {outcome.version:,})",
            highlight=False,
            markup=False,
        )
        if outcome.receipt is not None:
            typer.echo(encode_receipt(outcome.receipt))
    finally:
        store.close()


app.command("import")(import_file)
