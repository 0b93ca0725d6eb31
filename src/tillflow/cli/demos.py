"""The demos and the simulator: ``demo`` (the shop, live, verified against the truth),
``engine-demo`` (the engine on its own) and ``simulate`` (seeded schedules)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from socket import socket
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tillflow.cli.common import console, errors, fail, statistics_table, vat_by_rate
from tillflow.cli.demo_server import listening_socket, run_served
from tillflow.demos.engine import REGISTRY as ENGINE_REGISTRY
from tillflow.demos.engine import DemoSettings
from tillflow.demos.engine import run_demo as run_engine_demo
from tillflow.demos.shop import ShopDemoSettings, Snapshot, Verdict, run_shop_demo
from tillflow.demos.simulation import DESIGNS, Design, simulate_shop
from tillflow.engine import EventStore, ProcessorStatistics, TillflowError
from tillflow.service.bootstrap import (
    ConfigurationError,
    describe_database,
    open_store,
    service_registry,
)
from tillflow.shop.assembly import REGISTRY as SHOP_REGISTRY
from tillflow.shop.money import money
from tillflow.shop.reporting.rows import ProductRow
from tillflow.testing import Leasing


def _as_of(row: ProductRow) -> str:
    return f"v{row.as_of.version:,} @{row.as_of.position:,}"


def _report_table(snapshot: Snapshot, top: int = 10) -> Table:
    report = snapshot.report
    freshness = report.freshness
    best = sorted(report.rows, key=lambda row: -row.revenue)[:top]
    short = [row for row in report.rows if row.open_shortfall > 0 and row not in best]
    table = Table(
        title=f"report: top {top} products by revenue, and every product short "
        f"({freshness.lag_events:,} events / {freshness.lag_seconds:.3f} s behind the log)",
        expand=False,
    )
    for column in ("product", "sold", "returned", "revenue", "stock left", "short", "oversold"):
        table.add_column(column, justify="left" if column == "product" else "right")
    table.add_column("as of (version @position)", justify="right")
    for row in [*best, *short]:
        style = "bold red" if row.open_shortfall > 0 else None
        table.add_row(
            row.name or row.product_id,
            f"{row.units_sold:,}",
            f"{row.units_returned:,}",
            money(row.revenue),
            f"{row.stock_left:,}",
            f"{row.open_shortfall:,}" if row.open_shortfall else "",
            f"{row.units_oversold:,}" if row.units_oversold else "",
            _as_of(row),
            style=style,
        )
    return table


def _totals_line(snapshot: Snapshot) -> str:
    totals = snapshot.report.totals
    return (
        f"[bold]totals[/]: revenue {money(totals.revenue)} · {totals.checkouts:,} checkouts · "
        f"{totals.returns:,} returns · {totals.units_sold:,} units sold, "
        f"{totals.units_returned:,} returned — as of position {totals.as_of.position:,}\n"
        f"{vat_by_rate(totals)}\n"
        f"live check of every row read: received − sold + returned = stock left held "
        f"{snapshot.identity_checks - snapshot.identity_breaks:,} of "
        f"{snapshot.identity_checks:,} times"
    )


def _activity_line(snapshot: Snapshot) -> str:
    counters = snapshot.counters
    waited = "not measured yet"
    if counters.read_your_writes_waits:
        waited = (
            f"{counters.read_your_writes * 1000:,.1f} ms "
            f"(most {counters.read_your_writes_max * 1000:,.1f} ms)"
        )
    return (
        f"deliveries {counters.deliveries:,} ({counters.units_delivered:,} units, opening stock "
        f"included) · returns {counters.returns:,} · till retries {counters.retries:,} · "
        f"refusals {counters.refusals:,}\nread-your-writes (once a second, wait until the "
        f"report has passed the latest checkout): {waited}"
    )


def _shop_view(progress: Progress, snapshot: Snapshot, height: int) -> Group:
    # everything but the product rows takes about 18 lines + a row per processor lane:
    # show as many top products as fit (3..10), then every product short
    short = sum(row.open_shortfall > 0 for row in snapshot.report.rows)
    top = max(3, min(10, height - 18 - len(snapshot.statistics) - short))
    return Group(
        progress,
        _activity_line(snapshot),
        _report_table(snapshot, top),
        _totals_line(snapshot),
        statistics_table(snapshot.statistics, "processors"),
    )


def _print_z_reports(verdict: Verdict) -> None:
    """One line per till's Z report: takings by tender, expected and counted cash."""
    for row in verdict.z_reports:
        takings = row.takings
        difference = row.difference or 0
        console.print(
            f"Z {row.till_id}: {takings.sales:,} sales, cash {money(takings.cash)}, card "
            f"{money(takings.card)}, refunds {money(takings.cash_refunds + takings.card_refunds)};"
            f" expected {money(row.expected_cash)}, counted {money(row.counted or 0)}"
            + (
                f" ({money(abs(difference))} {'over' if difference > 0 else 'short'})"
                if difference
                else " (exact)"
            ),
            highlight=False,
        )


def _print_verdict(verdict: Verdict, settings: ShopDemoSettings) -> None:
    counters = verdict.counters
    selling = counters.selling_seconds
    achieved = counters.checkouts / selling if selling else 0.0
    if verdict.matches:
        console.print(
            f"[bold green]report verified:[/] {counters.checkouts:,} checkouts "
            f"({counters.units:,} units), {counters.returns:,} returns, "
            f"{counters.deliveries:,} deliveries, {verdict.products} products —\n  every row, "
            "the totals and the consistent-cut audit match the truth computed from the "
            "commands issued",
            highlight=False,
        )
    if verdict.units_oversold:
        console.print(
            f"oversold: {verdict.units_oversold:,} units sold that were not on the shelf, each "
            f"with its apology (StockShortfall);\n  still short at the end: "
            f"{verdict.open_shortfall:,} units of {'; '.join(verdict.short_products) or 'nothing'}",
            highlight=False,
        )
    paid = verdict.payments
    console.print(
        f"paid: {paid.cash:,} in cash, {paid.card:,} by card, {paid.split:,} split; "
        f"{paid.declined:,} cards declined ({paid.settled_in_cash:,} then paid in cash, "
        f"{paid.walked_away:,} walked away);\n  tenders {money(paid.tendered)} "
        f"(cards {money(paid.by_card)}, change given {money(paid.change)})"
        + (" = gross = revenue, per till and in all" if verdict.matches else ""),
        highlight=False,
    )
    _print_z_reports(verdict)
    lag = ", ".join(
        f"{name} {verdict.max_lag_events[name]:,} events / {verdict.max_lag_seconds[name]:.3f} s"
        for name in verdict.max_lag_events
    )
    console.print(
        f"rang up {achieved:,.0f} checkouts/s (asked {settings.rate:,.0f}/s); processors caught "
        f"up {verdict.drain_seconds:.3f} s after the tills stopped;\n  most lag seen: {lag}",
        highlight=False,
    )
    if counters.behind_schedule > 0.5:
        console.print(
            f"[yellow]note:[/] the tills fell up to {counters.behind_schedule:.1f} s behind "
            "their schedule: a till rings up one checkout at a time;\n  more --tills let more "
            "checkouts share a commit",
            highlight=False,
        )
    for refusal in verdict.refusals:
        console.print(f"[yellow]refused:[/] {refusal}", highlight=False)
    if not verdict.matches:
        for problem in verdict.problems[:50]:
            errors.print(f"[red]mismatch:[/] {problem}", highlight=False)
        errors.print(
            f"[bold red]report does NOT match the truth:[/] {len(verdict.problems):,} mismatches",
            highlight=False,
        )


def _run_live(store: EventStore, settings: ShopDemoSettings, sock: socket | None) -> Verdict | None:
    """Run the demo under a live view (served on ``sock`` if given: see
    :mod:`tillflow.cli.demo_server`); ``None`` when a signal stopped it before its verdict."""
    duration = settings.duration
    progress = Progress(
        TextColumn("[bold]{task.fields[phase]:<9}"),
        BarColumn(),
        TextColumn("{task.completed:5.1f}/{task.total:g} s"),
        TextColumn("{task.fields[checkouts]:>9,} checkouts rung up"),
        TimeRemainingColumn(),
    )
    task = progress.add_task("selling", total=duration, phase="selling", checkouts=0)
    height = console.height if console.is_terminal else 40  # fit the view on a screen
    url = ""
    with Live(console=console, auto_refresh=False, redirect_stderr=False) as live:

        def tick(snapshot: Snapshot) -> None:
            progress.update(
                task,
                completed=min(snapshot.elapsed, duration),
                phase=snapshot.phase,
                checkouts=snapshot.counters.checkouts,
            )
            live.update(_shop_view(progress, snapshot, height), refresh=True)

        def announce(found: str) -> None:
            nonlocal url
            url = found
            console.print(f"[bold]dashboard:[/] {found}", highlight=False, soft_wrap=True)

        def finished(verdict: Verdict) -> None:
            live.stop()
            console.print()
            _print_verdict(verdict, settings)
            console.print(f"still serving {url}\n  Ctrl-C to stop", highlight=False, soft_wrap=True)

        try:
            if sock is None:
                return asyncio.run(run_shop_demo(store, settings, tick))
            return asyncio.run(run_served(store, settings, sock, announce, tick, finished))
        except TillflowError as error:
            raise fail(f"the demo stopped: {error}", 1) from None


def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="A new SQLite file, or a postgresql:// URL of an empty database (?lanes=N: "
            "its lane count), to use (default: a new file in a temporary directory, kept "
            "afterwards for `tillflow status`).",
        ),
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of selling.")] = 10.0,
    tills: Annotated[int, typer.Option(help="Tills checking out concurrently.")] = 4,
    rate: Annotated[float, typer.Option(help="Checkouts per second, all tills together.")] = 500.0,
    seed: Annotated[int, typer.Option(help="Seed of the tills', truck's and returns' dice.")] = 1,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Serve the API and the dashboard while the demo runs (and after, until "
            "Ctrl-C); print the dashboard's URL with a viewer token.",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="With --serve: the address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="With --serve: the port (0: a free one).")
    ] = 8000,
) -> None:
    """The shop on a SQLite file: a seeded catalog, tills checking out concurrently while
    deliveries arrive, customers return things and a few products sell out (oversells become
    apologies); a live report with as-of and lag; at the end the report is verified against
    the truth computed from the commands issued (exit code 1 if it does not match)."""
    settings = ShopDemoSettings(duration, tills, rate, seed)
    for problem in settings.problems():
        raise fail(problem, 2)
    sock = None
    if serve:
        try:
            sock = listening_socket(host, port)
        except OSError as error:
            raise fail(f"--host {host} --port {port}: cannot listen there: {error}", 2) from None
    path = database or str(Path(tempfile.mkdtemp(prefix="tillflow-shop-")) / "shop.db")
    try:
        store = open_store(path, registry=service_registry() if serve else SHOP_REGISTRY)
    except (ConfigurationError, TillflowError) as error:
        raise fail(str(error), 2) from None
    try:
        if any(store.heads().values()):
            raise fail(
                f"database {describe_database(path)!r} already holds events: the demo needs a "
                "new file",
                2,
            )
        console.print(
            f"[bold]shop demo[/] · database: {describe_database(path)} · {tills} tills · "
            f"{rate:,.0f} checkouts/s · {duration:g} s · seed {seed}",
            highlight=False,
        )
        served = _run_live(store, settings, sock)
    finally:
        if sock is not None:
            sock.close()
        store.close()
    if served is None:
        raise fail("stopped before the end: nothing verified", 1)
    verdict = served
    if sock is None:  # --serve printed it while still serving
        console.print()
        _print_verdict(verdict, settings)
    shown = describe_database(path)
    console.print(f"database: {shown}\n  look inside: tillflow status --database {shown}")
    if not verdict.matches:
        raise typer.Exit(1)


def engine_demo(
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
    """The engine on its own: writers append deposits while a chain of three processors
    (ledger → totals → audit, joined by sequence barriers) keeps views; then verify the
    views against the truth recomputed from the log."""
    with tempfile.TemporaryDirectory(prefix="tillflow-engine-demo-") as scratch:
        path = database or str(Path(scratch) / "demo.db")
        try:
            store = open_store(path, registry=ENGINE_REGISTRY)
        except (ConfigurationError, TillflowError) as error:
            raise fail(str(error), 2) from None
        settings = DemoSettings(duration, writers, rate, seed)
        progress = Progress(
            TextColumn("[bold]writing"),
            BarColumn(),
            TextColumn("{task.fields[appended]:>9,} deposits"),
            TimeRemainingColumn(),
        )
        task = progress.add_task("writing", total=duration, appended=0)
        console.print(
            f"database: {describe_database(path)}  writers: {writers}  "
            f"rate: {rate:,.0f}/s  seed: {seed}"
        )
        with Live(console=console, refresh_per_second=8) as live:

            def tick(elapsed: float, appended: int, rows: list[ProcessorStatistics]) -> None:
                progress.update(task, completed=min(elapsed, duration), appended=appended)
                live.update(Group(progress, statistics_table(rows, "processors")))

            try:
                verdict = asyncio.run(run_engine_demo(store, settings, tick))
            except TillflowError as error:
                raise fail(str(error), 1) from None
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


def simulate(
    design: Annotated[
        str,
        typer.Option(help="Report design: barrier (the shop's), chain, eventual, naive, trap."),
    ] = "barrier",
    seeds: Annotated[int, typer.Option(min=1, help="How many seeded schedules to run.")] = 1000,
    start: Annotated[int, typer.Option(min=0, help="First seed.")] = 0,
    steps: Annotated[int, typer.Option(min=1, max=100_000, help="Actions per schedule.")] = 120,
    replay: Annotated[
        int | None, typer.Option(help="Replay this one seed and print its whole trace.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=16,
            help="Run the processors on this many simulated workers sharing the lanes by "
            "leases (paused past their expiry, taken over, fenced out); 0: one process.",
        ),
    ] = 0,
) -> None:
    """Run the shop under the deterministic simulator: seeded interleavings of commands,
    processor steps and crashes, the report's properties checked after every step. Exit 1
    if a schedule breaks them (the negative controls naive and trap are expected to)."""
    if design not in DESIGNS:
        raise fail(f"--design {design!r}: choose one of {', '.join(DESIGNS)}", 2)
    chosen: Design = design
    leasing = Leasing(workers, most_workers=max(workers, 5)) if workers else None
    if replay is not None:
        result = simulate_shop(chosen, replay, steps, leasing)
        console.print(result.report(last=len(result.trace)), highlight=False)
        raise typer.Exit(0 if result.ok else 1)
    failures = []
    with Progress(
        TextColumn(f"[bold]{design}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} seeds"),
    ) as progress:
        task = progress.add_task("seeds", total=seeds)
        for seed in range(start, start + seeds):
            result = simulate_shop(chosen, seed, steps, leasing)
            if not result.ok:
                failures.append(result)
                if len(failures) >= 3:
                    break
            progress.advance(task)
    if not failures:
        console.print(f"[green]{seeds:,} schedules of {steps} steps: every property held[/]")
        return
    for failure in failures:
        console.print(failure.report(last=20), highlight=False)
    console.print(
        f"[red]schedule broke the properties at seed {failures[0].seed}; replay with "
        f"tillflow simulate --design {design}{f' --workers {workers}' if workers else ''} "
        f"--replay {failures[0].seed}[/]"
    )
    raise typer.Exit(1)
