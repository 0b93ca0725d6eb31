"""``tillflow till open | close | x-report | z-report``: till sessions and their cash-up.

``open`` and ``close`` write straight to the store and print the receipt token on stdout
(a summary goes to stderr), as ``tillflow checkout`` does. The reports read what the
``tills`` processor has committed (run by ``tillflow serve`` or ``worker``) and say how far
behind the log it is. Exit codes: 0 done, 1 refused by the shop (the reason on one line),
2 bad usage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from tillflow.cli.common import DatabaseOption, errors, fail, open_existing, show
from tillflow.engine import EventStore, Receipt, TillflowError
from tillflow.http.tills import till_report_out
from tillflow.service.receipt_tokens import encode_receipt
from tillflow.shop.money import money
from tillflow.shop.sale.service import SaleService
from tillflow.shop.sale.till_sessions import CloseTill, OpenTill
from tillflow.shop.sale.tills import Tills
from tillflow.shop.tills.queries import TillReader, TillReport
from tillflow.shop.tills.rows import Takings, TillSession

app = typer.Typer(
    help="Open and close tills, and read their X and Z reports.", no_args_is_help=True
)

TillArgument = Annotated[str, typer.Argument(help="The till's id.")]
SessionOption = Annotated[
    str | None,
    typer.Option("--session", help="The session's id (makes a retry harmless); omitted: made up."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print it as JSON (as the route).")]


def _write(database: str, write: Callable[[Tills], Receipt]) -> None:
    """Run ``write`` on the store's tills and print its receipt token; a refusal is one line
    and exit code 1."""
    store = open_existing(database)
    try:
        receipt = write(SaleService(store).tills)
    except TillflowError as refused:
        raise fail(str(refused), 1) from None
    finally:
        store.close()
    typer.echo(encode_receipt(receipt))


def open_till(
    till: TillArgument,
    cash: Annotated[int, typer.Option("--float", help="Cents put in the drawer.")],
    session: SessionOption = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Open a till with a float: it rings up sales until it is closed."""
    _write(database, lambda tills: tills.open(OpenTill(till, cash, session)))
    errors.print(f"opened {till} with a float of {money(cash)}", highlight=False)


def close_till(
    till: TillArgument,
    counted: Annotated[int, typer.Option("--counted", help="Cents counted in the drawer.")],
    session: Annotated[
        str | None, typer.Option("--session", help="The open session's id (checked).")
    ] = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Close a till's open session with the cash counted in the drawer."""
    _write(database, lambda tills: tills.close(CloseTill(till, counted, session)))
    errors.print(f"closed {till} with {money(counted)} counted", highlight=False)


def takings_table(title: str, takings: Takings) -> Table:
    """What a till took and paid back, by tender."""
    table = Table(title=title, expand=False)
    for column in ("", "cash", "card"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("taken", money(takings.cash), money(takings.card))
    table.add_row(
        "  handed over / change", f"{money(takings.cash_handed)} / {money(takings.change)}", ""
    )
    table.add_row("refunded", money(takings.cash_refunds), money(takings.card_refunds))
    return table


def session_lines(row: TillSession) -> str:
    """The drawer: float, expected, counted and difference."""
    lines = [
        f"session {row.session_id}: opened {row.opened_at or '?'}"
        + (f", closed {row.closed_at}" if row.closed_at else " (open)"),
        f"{row.takings.sales:,} sales · {row.takings.returns:,} returns · "
        f"{row.takings.declines:,} declined cards",
        f"float {money(row.float)} · expected in the drawer {money(row.expected_cash)}",
    ]
    if row.counted is not None and row.difference is not None:
        sign = "+" if row.difference > 0 else ""
        lines.append(f"counted {money(row.counted)} · difference {sign}{money(row.difference)}")
    if row.late.sales or row.late.returns:
        lines.append(
            f"[yellow]{row.late.sales:,} sale(s) reached the cash-up after the close: "
            f"{money(row.late.cash)} cash, {money(row.late.card)} card (not above)[/]"
        )
    return "\n".join(lines)


def _show(store: EventStore, report: TillReport, as_json: bool, kind: str) -> None:
    if as_json:
        typer.echo(till_report_out(store, report).model_dump_json(indent=2))
        return
    freshness = report.freshness
    show(
        f"[bold]{kind} report[/] of till {report.till.till_id} — "
        f"{freshness.lag_events:,} events / {freshness.lag_seconds:.3f} s behind the log"
    )
    if report.session is None:
        show("no session open")
    else:
        show(session_lines(report.session))
        show(takings_table("takings by tender", report.session.takings))
    outside = report.till.outside
    if outside.sales or outside.returns:
        show(takings_table("outside any session", outside))


def x_report(
    till: TillArgument, database: DatabaseOption = "tillflow.db", as_json: JsonOption = False
) -> None:
    """Print a till's X report: its open session so far."""
    store = open_existing(database)
    try:
        _show(store, TillReader(store).x_report(till), as_json, "X")
    except TillflowError as refused:
        raise fail(str(refused), 1) from None
    finally:
        store.close()


def z_report(
    till: TillArgument,
    session: Annotated[str, typer.Argument(help="The closed session's id.")],
    database: DatabaseOption = "tillflow.db",
    as_json: JsonOption = False,
) -> None:
    """Print a closed session's Z report."""
    store = open_existing(database)
    try:
        _show(store, TillReader(store).z_report(till, session), as_json, "Z")
    except TillflowError as refused:
        raise fail(str(refused), 1) from None
    finally:
        store.close()


app.command("open")(open_till)
app.command("close")(close_till)
app.command("x-report")(x_report)
app.command("z-report")(z_report)
