"""Looking inside a store: ``status`` (processors), ``report`` (the report table with
as-of), ``version``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tillflow import __version__
from tillflow.cli.common import (
    DatabaseOption,
    console,
    fail,
    open_existing,
    show,
    vat_by_rate,
)
from tillflow.cli.leased import LEASE_COLUMNS, lease_cells
from tillflow.cli.rebuild import retired_names
from tillflow.cli.stalls import STALL_COLUMNS, StallAfterOption, StallCells
from tillflow.engine import EventStore, StoreUnavailable
from tillflow.engine.retiring import is_retired
from tillflow.engine.stalls import DEFAULT_STALL_AFTER
from tillflow.engine.versions import is_claim
from tillflow.http.report import report_out
from tillflow.service.bootstrap import describe_database
from tillflow.service.exports import report_csv, totals_csv
from tillflow.shop.inventory.stock import is_low
from tillflow.shop.money import money
from tillflow.shop.reporting.queries import Report, ReportReader


def status(
    database: DatabaseOption = "tillflow.db",
    stall_after: StallAfterOption = DEFAULT_STALL_AFTER,
) -> None:
    """Show every processor's checkpoint, the head and the lag, from the store file, and
    whether the database takes writes now (``degraded`` while, for instance, another
    process holds an SQLite file's write lock past the busy timeout)."""
    store = open_existing(database)
    try:
        heads = store.heads()
        writable = _writable(store)
        leases = lease_cells(store)
        stalls = StallCells(store, stall_after)
        table = Table(title=f"{describe_database(database)}: heads {heads}")
        columns = ["processor", "lane", "checkpoint", "lag"]
        for column in [*columns, *STALL_COLUMNS, *(LEASE_COLUMNS if leases is not None else ())]:
            table.add_column(column, justify="right" if column in columns[1:] else "left")
        checkpoints = store.checkpoints()
        retired = retired_names(store, checkpoints)
        for name, lanes in sorted(checkpoints.items()):
            if is_claim(name):
                continue
            for lane, position in sorted(lanes.items()):
                if is_retired(position):  # its work taken over by another processor
                    table.add_row(f"{name} (retired)", str(lane), "-", "-")
                    continue
                if name in retired:  # a version no longer live: nobody moves it on purpose
                    table.add_row(f"{name} (retired)", str(lane), f"{position:,}", "-")
                    continue
                cells = [name, str(lane), f"{position:,}", f"{heads[lane] - position:,}"]
                progress = stalls.cells(name, lane)
                cells.extend(progress)
                if leases is not None:
                    cells.extend(leases.get((name, lane), ("-", "-", "unleased")))
                table.add_row(*cells, style="bold red" if progress[0] == "STALLED" else None)
        show(table)
        console.print(f"database: {writable}", highlight=False, soft_wrap=True)
    finally:
        store.close()


def _writable(store: EventStore) -> str:
    """``ok``, or ``degraded`` and why: whether the store would take a write now."""
    try:
        store.probe_writes()
    except StoreUnavailable as error:
        return f"degraded ({error}); writers retry and resume by themselves"
    return "ok"


def _when(unix: float) -> str:
    if unix <= 0:
        return "never"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def report_table(report: Report) -> Table:
    """Every row with its as-of; short products in red."""
    freshness = report.freshness
    positions = ", ".join(f"{freshness.checkpoint[lane]:,}" for lane in sorted(freshness.head))
    table = Table(
        title=f"report as of position {positions} of version {report.version} "
        f"({freshness.lag_events:,} events / {freshness.lag_seconds:.3f} s behind the log)",
        expand=False,
    )
    for column in (
        "product",
        "name",
        "price",
        "sold",
        "returned",
        "revenue",
        "VAT",
        "received",
        "stock left",
        "short",
        "oversold",
        "as of (version @position, time)",
    ):
        table.add_column(column, justify="left" if column in ("product", "name") else "right")
    for row in report.rows:
        low = is_low(row.stock_left, row.reorder_point)
        table.add_row(
            row.product_id,
            row.name + (" (discontinued)" if row.discontinued else ""),
            money(row.price),
            f"{row.units_sold:,}",
            f"{row.units_returned:,}",
            money(row.revenue),
            money(row.tax),
            f"{row.received:,}",
            f"{row.stock_left:,}" + (f" < {row.reorder_point:,}" if low else ""),
            f"{row.open_shortfall:,}" if row.open_shortfall else "",
            f"{row.units_oversold:,}" if row.units_oversold else "",
            f"v{row.as_of.version:,} @{row.as_of.position:,}, {_when(row.as_of.at)}",
            style="bold red" if row.open_shortfall > 0 else "yellow" if low else None,
        )
    return table


def report(
    database: DatabaseOption = "tillflow.db",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (as GET /report).")
    ] = False,
    as_csv: Annotated[
        bool,
        typer.Option("--csv", help="Print the rows as CSV, each with its as-of (GET /report.csv)."),
    ] = False,
    totals_only: Annotated[
        bool,
        typer.Option("--totals", help="With --csv: the totals, all and per VAT rate, instead."),
    ] = False,
) -> None:
    """Print the report: per product units sold and returned, revenue, stock left,
    shortfalls, each row with the position and time it is true as of; then the totals."""
    if totals_only and not as_csv:
        raise fail("--totals goes with --csv", 2)
    store = open_existing(database)
    try:
        read = ReportReader(store).report()
        if as_csv:
            typer.echo(totals_csv(read) if totals_only else report_csv(read), nl=False)
            return
        if as_json:
            typer.echo(report_out(store, read).model_dump_json(indent=2))
            return
        show(report_table(read))
        totals = read.totals
        show(
            f"[bold]totals[/]: revenue {money(totals.revenue)} · {totals.checkouts:,} checkouts "
            f"· {totals.returns:,} returns · {totals.units_sold:,} units sold, "
            f"{totals.units_returned:,} returned — as of position "
            f"{totals.as_of.position:,} of version {read.version} "
            f"({_when(totals.as_of.at)}); read at {_when(time.time())}\n{vat_by_rate(totals)}"
        )
    finally:
        store.close()


def version() -> None:
    """Print the version."""
    console.print(f"tillflow {__version__}")
