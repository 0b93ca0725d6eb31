"""The ``tillflow`` command. One clear line on error; exit codes: 0 ok, 1 the check failed,
2 bad usage or configuration."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tillflow import __version__
from tillflow.bootstrap import ConfigurationError, open_store
from tillflow.demo import REGISTRY, DemoSettings, run_demo
from tillflow.engine import ProcessorStatistics, TillflowError

app = typer.Typer(
    help="tillflow: a point-of-sale backend whose reports stay true while its handlers run "
    "asynchronously.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)

DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database",
        "-d",
        envvar="TILLFLOW_DATABASE",
        help="SQLite file path, or 'memory'.",
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _statistics_table(rows: list[ProcessorStatistics], title: str) -> Table:
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


@app.command()
def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database", "-d", help="SQLite file to use (default: a new temporary file)."
        ),
    ] = None,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of writing.")] = 10.0,
    writers: Annotated[int, typer.Option(min=1, max=1000, help="Concurrent writers.")] = 8,
    rate: Annotated[float, typer.Option(min=1.0, help="Deposits per second in all.")] = 2000.0,
    seed: Annotated[int, typer.Option(help="Seed of the writers' randomness.")] = 1,
) -> None:
    """Run the engine demo: writers append deposits while a chain of three processors
    (ledger → totals → audit, joined by sequence barriers) keeps views; then verify the
    views against the truth recomputed from the log."""
    with tempfile.TemporaryDirectory(prefix="tillflow-demo-") as scratch:
        path = database or str(Path(scratch) / "demo.db")
        try:
            store = open_store(path, registry=REGISTRY)
        except (ConfigurationError, TillflowError) as error:
            raise _fail(str(error), 2) from None
        settings = DemoSettings(duration, writers, rate, seed)
        progress = Progress(
            TextColumn("[bold]writing"),
            BarColumn(),
            TextColumn("{task.fields[appended]:>9,} deposits"),
            TimeRemainingColumn(),
        )
        task = progress.add_task("writing", total=duration, appended=0)
        console.print(f"database: {path}  writers: {writers}  rate: {rate:,.0f}/s  seed: {seed}")
        with Live(console=console, refresh_per_second=8) as live:

            def tick(elapsed: float, appended: int, rows: list[ProcessorStatistics]) -> None:
                progress.update(task, completed=min(elapsed, duration), appended=appended)
                live.update(Group(progress, _statistics_table(rows, "processors")))

            try:
                verdict = asyncio.run(run_demo(store, settings, tick))
            except TillflowError as error:
                raise _fail(str(error), 1) from None
            finally:
                store.close()
        console.print()
        if verdict.matches:
            console.print(
                f"[bold green]verified:[/] {verdict.deposits:,} deposits; balances, totals "
                "and the audit match the truth recomputed from the log"
            )
            return
        for problem in verdict.problems:
            errors.print(f"[red]mismatch:[/] {problem}", highlight=False)
        raise typer.Exit(1)


@app.command()
def status(database: DatabaseOption = "tillflow.db") -> None:
    """Show every processor's checkpoint, the head and the lag, from the store file."""
    if database != "memory" and not Path(database).exists():
        raise _fail(f"database {database!r} does not exist", 2)
    try:
        store = open_store(database)
    except (ConfigurationError, TillflowError) as error:
        raise _fail(str(error), 2) from None
    try:
        heads = store.heads()
        table = Table(title=f"{database}: heads {heads}")
        for column in ("processor", "lane", "checkpoint", "lag"):
            table.add_column(column, justify="left" if column == "processor" else "right")
        for name, lanes in sorted(store.checkpoints().items()):
            for lane, position in sorted(lanes.items()):
                table.add_row(name, str(lane), f"{position:,}", f"{heads[lane] - position:,}")
        console.print(table)
    finally:
        store.close()


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"tillflow {__version__}")


def main() -> None:
    """Entry point of the ``tillflow`` script."""
    os.environ.setdefault("COLUMNS", os.environ.get("COLUMNS", "120"))
    app()
