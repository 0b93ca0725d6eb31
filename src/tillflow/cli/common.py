"""What every command shares: the consoles, one-line failures, tables, money."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.table import Table

from tillflow.engine import EventStore, ProcessorStatistics, TillflowError
from tillflow.engine.postgres import SchemaMissing
from tillflow.service.bootstrap import (
    ConfigurationError,
    open_store,
    service_registry,
)
from tillflow.shop.money import money, percent
from tillflow.shop.reporting.rows import Totals

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def show(renderable: RenderableType) -> None:
    """Print to stdout: on a terminal, fitted to its width; piped or captured, whole (tables at
    their natural width, lines unwrapped), so a script never gets a name cut to "…" or a line
    split by a width nobody chose."""
    if console.is_terminal:
        console.print(renderable, highlight=False)
        return
    wide = console.options.update_width(10_000)
    width = max(console.measure(renderable, options=wide).maximum, 1)
    # Console.print never goes wider than its console: a console of the content's width.
    Console(width=width, soft_wrap=True).print(renderable, highlight=False)


DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database",
        "-d",
        envvar="TILLFLOW_DATABASE",
        help="SQLite file path or postgresql:// URL (env TILLFLOW_DATABASE; ?lanes=N: the "
        "lane count to create it with, or to insist on).",
    ),
]


def fail(message: str, code: int) -> typer.Exit:
    """Print one line on stderr; the ``typer.Exit`` to raise with ``code``."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def open_existing(database: str) -> EventStore:
    """Open a store that must already exist (with every served event type registered):
    an SQLite file, or a PostgreSQL database holding tillflow's schema; nothing is created.
    Raises the ``typer.Exit`` of exit code 2 with one line if it cannot be opened."""
    return open_or_exit(database, create=False)


def open_or_exit(database: str, *, create: bool = True) -> EventStore:
    """Open the store (see :func:`open_store`) with every served event type registered;
    a name, URL or database it cannot use is one line on stderr and the ``typer.Exit`` of
    exit code 2, with nothing written."""
    try:
        return open_store(database, registry=service_registry(), create=create)
    except SchemaMissing as error:
        raise fail(
            f"{error.path} holds no tillflow schema yet: `tillflow serve`, `tillflow token "
            "create` or `tillflow demo` creates it",
            2,
        ) from None
    except (ConfigurationError, TillflowError) as error:
        raise fail(str(error), 2) from None


def statistics_table(rows: list[ProcessorStatistics], title: str) -> Table:
    table = Table(title=title, expand=False)
    for column in (
        "processor",
        "state",
        "checkpoint",
        "head",
        "lag",
        "lag s",
        "events/s",
        "waits on",
    ):
        table.add_column(
            column, justify="left" if column in ("processor", "state", "waits on") else "right"
        )
    for row in rows:
        state = row.state if row.error is None else f"{row.state}: {row.error}"
        table.add_row(
            row.processor if row.lane == 0 else f"{row.processor}[{row.lane}]",
            state,
            f"{row.checkpoint:,}",
            f"{row.head:,}",
            f"{row.lag_events:,}",
            f"{row.lag_seconds:.3f}",
            f"{row.throughput:,.0f}",
            row.waiting_on or "",
        )
    return table


def vat_by_rate(totals: Totals) -> str:
    """The VAT in the revenue and its share per rate: ``VAT 12.90 in it: reduced 5 %:
    0.60 of 12.60 · standard 20 %: 12.30 of 73.80``."""
    rates = [
        f"{entry.rate or 'before VAT'} {percent(entry.basis_points)}: {money(entry.tax)} "
        f"of {money(entry.revenue)}"
        for entry in totals.by_rate
    ]
    return f"VAT {money(totals.tax)} in it: {' · '.join(rates) or 'no sales yet'}"
