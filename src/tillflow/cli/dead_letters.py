"""``tillflow dlq list | show | retry | skip``: the shop's parked events (dead letters).

A retry or skip is recorded as an event naming who asked and why; the processor that
parked the event carries it out at its next step (a running ``serve`` or ``worker``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from tillflow.cli.common import DatabaseOption, console, fail, open_existing, show
from tillflow.engine import TillflowError
from tillflow.engine.dead_letters import (
    Action,
    held_events,
    locate,
    parked_keys,
    request,
)
from tillflow.service.bootstrap import describe_database
from tillflow.shop.assembly import shop_processors

app = typer.Typer(
    help="Parked events (dead letters): what failed, what waits behind it; retry or skip.",
    no_args_is_help=True,
)

IdArgument = Annotated[
    str, typer.Argument(help="The dead letter: <processor>:<event id>, as listed.")
]
ByOption = Annotated[str, typer.Option("--by", help="Who asks (recorded with the request).")]


def processor_names() -> list[str]:
    """The shop's processors, in dependency order."""
    return [declared.name for declared in shop_processors()]


def _age(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"


@app.command("list")
def list_dead_letters(database: DatabaseOption = "tillflow.db") -> None:
    """Every parked key: processor, lane, key, the failed event, events held, attempts."""
    store = open_existing(database)
    try:
        table = Table(title=f"dead letters in {describe_database(database)}")
        for column in ("id", "processor", "lane", "key", "event", "held", "attempts", "age"):
            table.add_column(column)
        table.add_column("error / waits on")
        for parked in parked_keys(store, processor_names()):
            letter = parked.letter
            cause = letter.error if letter.behind is None else f"behind {letter.behind}"
            if parked.pending is not None:
                cause = f"{parked.pending} pending; {cause}"
            table.add_row(
                parked.id,
                parked.processor,
                str(letter.lane),
                letter.key,
                f"{letter.event_type} @{letter.position}",
                str(len(letter.held)),
                str(letter.attempts),
                _age(letter.parked_at),
                cause,
                style="red" if letter.behind is None else None,
            )
        show(table)
    finally:
        store.close()


@app.command("show")
def show_dead_letter(dead_letter: IdArgument, database: DatabaseOption = "tillflow.db") -> None:
    """One dead letter: the error and its traceback, the events held, the requests."""
    store = open_existing(database)
    try:
        try:
            parked = locate(store, processor_names(), dead_letter)
        except TillflowError as refusal:
            raise fail(str(refusal), 1) from None
        letter = parked.letter
        console.print(
            f"{parked.processor}, lane {letter.lane}, key {letter.key!r}: {letter.event_type} "
            f"{letter.event_id} @{letter.position} on {letter.stream!r}, parked "
            f"{_age(letter.parked_at)} ago, {letter.attempts} attempts",
            highlight=False,
        )
        if letter.behind is not None:
            console.print(f"held behind {letter.behind!r}'s dead letter", highlight=False)
        else:
            console.print(letter.traceback or letter.error, highlight=False, markup=False)
        held = Table(title=f"{len(letter.held)} held behind it, in order")
        for column in ("position", "type", "stream", "id"):
            held.add_column(column)
        for event in held_events(store, letter):
            held.add_row(str(event.position), event.type, event.stream, str(event.describe()))
        show(held)
        for asked in parked.requests:
            console.print(f"asked by {asked.by!r}: {asked.reason}", highlight=False)
        if parked.pending is not None:
            console.print(f"a {parked.pending} is pending", highlight=False)
    finally:
        store.close()


def _ask(database: str, dead_letter: str, action: Action, by: str, reason: str) -> None:
    store = open_existing(database)
    try:
        try:
            parked = locate(store, processor_names(), dead_letter)
            request(store, parked.processor, parked.letter.event_id, action, by, reason)
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        console.print(
            f"{action} of {dead_letter} ({parked.processor}, key {parked.letter.key!r}) "
            "recorded; the processor carries it out at its next step",
            highlight=False,
        )
    finally:
        store.close()


@app.command()
def retry(
    dead_letter: IdArgument,
    by: ByOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Handle the parked event again, then the ones held behind it, in order."""
    _ask(database, dead_letter, "retry", by, reason)


@app.command()
def skip(
    dead_letter: IdArgument,
    by: ByOption,
    reason: Annotated[str, typer.Option("--reason", help="Why it may be skipped (required).")],
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Give up the parked event (never handled) and handle the held ones, in order."""
    _ask(database, dead_letter, "skip", by, reason)
