"""``tillflow rebuild PROJECTION``: a blue/green rebuild of a projection, with a progress
bar; ``--dry-run`` compares instead of switching; ``--drop-retired`` drops the rows of the
versions no longer live."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tillflow.cli.common import DatabaseOption, console, fail, open_existing, show
from tillflow.engine import EventStore, HandlerFailed, Processor
from tillflow.engine.rebuild import (
    Difference,
    Rebuild,
    RebuildOutcome,
    drop_retired,
    projections,
)
from tillflow.engine.rebuild import (
    Progress as RebuildProgress,
)
from tillflow.engine.versions import (
    RebuildRunning,
    RebuildTakenOver,
    UnknownProjection,
    base_of,
    is_claim,
    live_name,
)
from tillflow.shop.assembly import shop_processors


def rebuild(
    projection: Annotated[str, typer.Argument(help="The projection to rebuild: reporting.")],
    database: DatabaseOption = "tillflow.db",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Rebuild, then list the rows that differ from the live version's (by key), "
            "switch nothing and drop the rebuilt rows. Exit code 1 when some differ.",
        ),
    ] = False,
    drop_retired_rows: Annotated[
        bool,
        typer.Option(
            "--drop-retired",
            help="Build nothing: delete the rows of the versions no longer live (once no "
            "runtime moves them any more).",
        ),
    ] = False,
) -> None:
    """Build a new version of a projection from the start of the log into its own rows while
    the live one keeps serving; once it has caught up, switch reads to it in one
    transaction. Runtimes that run the projection carry the new version on from there."""
    if dry_run and drop_retired_rows:
        raise fail("--dry-run and --drop-retired do not go together", 2)
    store = open_existing(database)
    try:
        declared = _projection(projection)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        if drop_retired_rows:
            dropped = drop_retired(store, declared, owner)
            _say_dropped(projection, dropped)
            return
        outcome = _run(store, declared, owner, dry_run)
    except (RebuildRunning, RebuildTakenOver, HandlerFailed) as error:
        raise fail(str(error), 1) from None
    finally:
        store.close()
    if outcome.differences is None:
        _say_switched(outcome)
        return
    _say_compared(outcome, outcome.differences)
    if outcome.differences:
        raise typer.Exit(1)


def _projection(name: str) -> Processor:
    known = projections(shop_processors())
    if name not in known:
        raise fail(str(UnknownProjection(name, sorted(known))), 2)
    return known[name]


def _run(store: EventStore, declared: Processor, owner: str, dry_run: bool) -> RebuildOutcome:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{declared.name}: starting", total=None, rate="", eta="")

        def progress(step: RebuildProgress) -> None:
            eta = step.eta
            bar.update(
                task,
                description=f"{declared.name} v{step.version}",
                completed=step.done,
                total=step.total,
                rate=f"{step.rate:,.0f} events/s",
                eta="ETA -" if eta is None else f"ETA {eta:,.1f} s",
            )

        return Rebuild(
            store,
            declared,
            owner,
            graph=shop_processors(),
            dry_run=dry_run,
            on_progress=progress,
        ).run()


def _say_switched(outcome: RebuildOutcome) -> None:
    positions = ", ".join(f"{p:,}" for _, p in sorted(outcome.positions.items()))
    show(
        f"[bold]{outcome.projection}[/]: switched to v{outcome.version} at position "
        f"{positions}, from v{outcome.previous}; built {outcome.scanned:,} positions in "
        f"{outcome.seconds:.2f} s ({outcome.rate:,.0f} events/s).\n"
        f"Reads use v{outcome.version} from now on, and runtimes carry it on from their next "
        f"step. v{outcome.previous}'s rows stay until `tillflow rebuild {outcome.projection} "
        "--drop-retired` deletes them; that is safe as soon as this has returned (it waits "
        "until no runtime moves the old version any more)."
    )


def _say_compared(outcome: RebuildOutcome, differences: list[Difference]) -> None:
    positions = ", ".join(f"{p:,}" for _, p in sorted(outcome.positions.items()))
    head = (
        f"[bold]{outcome.projection}[/]: dry run v{outcome.version} against live "
        f"v{outcome.previous}, both at position {positions}: "
    )
    if not differences:
        show(head + "every row is the same. Nothing switched; the rebuilt rows are dropped.")
        return
    table = Table(title=head + f"{len(differences):,} rows differ", expand=False)
    for column in ("view", "key", "field", "live", "rebuilt"):
        table.add_column(column)
    for difference in differences:
        for field, live, rebuilt in _fields(difference):
            table.add_row(difference.view, difference.key, field, live, rebuilt)
    show(table)
    show("Nothing switched; the rebuilt rows are dropped.")


def _fields(difference: Difference) -> list[tuple[str, str, str]]:
    """The top-level fields on which the two rows differ (the whole row when absent)."""
    live, rebuilt = _decoded(difference.live), _decoded(difference.rebuilt)
    if not isinstance(live, dict) or not isinstance(rebuilt, dict):
        return [("(row)", _short(live), _short(rebuilt))]
    return [
        (name, _short(live.get(name)), _short(rebuilt.get(name)))
        for name in sorted(live.keys() | rebuilt.keys())
        if live.get(name) != rebuilt.get(name)
    ]


def _decoded(raw: bytes | None) -> Any:
    return None if raw is None else msgspec.json.decode(raw)


def _short(value: Any) -> str:
    text = "absent" if value is None else msgspec.json.encode(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _say_dropped(projection: str, dropped: dict[int, int]) -> None:
    if not dropped:
        show(f"[bold]{projection}[/]: no retired version holds rows; nothing dropped.")
        return
    done = ", ".join(f"v{version}: {rows:,} rows" for version, rows in sorted(dropped.items()))
    show(f"[bold]{projection}[/]: dropped {done}.")


def retired_names(store: EventStore, names: Iterable[str]) -> set[str]:
    """Of the checkpoint names ``names``, those of no live processor: rebuild claims'
    counters and versions of a projection that are not live (switched away from, dry runs,
    stopped rebuilds)."""
    known = projections(shop_processors())
    retired = set()
    for name in names:
        base = base_of(name)
        if is_claim(name) or (base in known and name != live_name(store, base)):
            retired.add(name)
    return retired
