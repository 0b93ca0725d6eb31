"""The ``tillflow`` command. One clear line on error; exit codes: 0 ok, 1 refused or the
check failed, 2 bad usage or configuration.

::

    tillflow serve | worker                  run the shop (cli.serve)
    tillflow checkout | receive | count      write from scripts (cli.scripts)
    tillflow reorder-point                   low stock below it (cli.scripts)
    tillflow report | status | version       look inside (cli.inspect; report --csv)
    tillflow rebuild reporting [--dry-run]   blue/green rebuild of a projection (cli.rebuild)
    tillflow sales hourly | daily            sales per hour or day as CSV (cli.sales)
    tillflow receipt ID [--return R]         print a receipt (cli.receipts)
    tillflow till open | close | x-report    till sessions and cash-up (cli.tills)
    tillflow till z-report TILL SESSION      a closed session's Z report (cli.tills)
    tillflow token create | revoke | list    bearer tokens (cli.tokens)
    tillflow catalog import FILE.csv         import or update the catalog (cli.catalog)
    tillflow dlq list | show | retry | skip  parked events (cli.dead_letters)
    tillflow backup PATH | restore BACKUP    online SQLite backups (cli.backups)
    tillflow demo | engine-demo | simulate   see it work (cli.demos)
"""

from __future__ import annotations

import typer

from tillflow.cli import (
    backups,
    catalog,
    dead_letters,
    demos,
    inspect,
    rebuild,
    receipts,
    sales,
    scripts,
    serve,
    tills,
    tokens,
)

app = typer.Typer(
    help="tillflow: a point-of-sale backend whose reports stay true while its handlers run "
    "asynchronously. Start with `tillflow demo`, or `tillflow token create --role manager "
    "--name me` then `tillflow serve`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.command()(serve.serve)
app.command()(serve.worker)
app.command()(scripts.checkout)
app.command()(scripts.receive)
app.command()(scripts.count)
app.command("reorder-point")(scripts.reorder_point)
app.command()(inspect.report)
app.command()(inspect.status)
app.command()(rebuild.rebuild)
app.command()(receipts.receipt)
app.add_typer(tills.app, name="till")
app.add_typer(tokens.app, name="token")
app.add_typer(catalog.app, name="catalog")
app.add_typer(sales.app, name="sales")
app.add_typer(dead_letters.app, name="dlq")
app.command()(backups.backup)
app.command()(backups.restore)
app.command()(demos.demo)
app.command("engine-demo")(demos.engine_demo)
app.command()(demos.simulate)
app.command()(inspect.version)


def main() -> None:
    """Entry point of the ``tillflow`` script."""
    app()


__all__ = ["app", "main"]
