"""``tillflow backup PATH`` and ``tillflow restore BACKUP``: SQLite stores, online
(:mod:`tillflow.service.backups`, :mod:`tillflow.service.restores`), with a progress bar
on stderr and what was copied on stdout. Exit codes: 0 done, 1 refused (nothing written),
2 bad usage (a database that cannot be opened)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import rich.progress
import typer

from tillflow.cli.common import DatabaseOption, errors, fail, show
from tillflow.engine import TillflowError
from tillflow.service.backups import BackupRefused, Progress, StoreCopy, backup_store
from tillflow.service.bootstrap import ConfigurationError, describe_database
from tillflow.service.restores import restore_store


@contextlib.contextmanager
def _progress_bar(description: str) -> Iterator[Progress]:
    """A transient bar of the pages copied, on stderr when it is a terminal."""
    with rich.progress.Progress(
        rich.progress.TextColumn("{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.TaskProgressColumn(),
        rich.progress.TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def copied(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield copied


def _positions(positions: dict[int, int]) -> str:
    """``12,345`` for one lane; ``lane 0 12,345 · lane 1 …`` for several."""
    if len(positions) == 1:
        return f"{next(iter(positions.values())):,}"
    return " · ".join(f"lane {lane} {position:,}" for lane, position in sorted(positions.items()))


def _describe(copy: StoreCopy, verb: str) -> str:
    resumes = " · ".join(
        f"{name} {_positions(lanes)}" for name, lanes in sorted(copy.checkpoints.items())
    )
    return (
        f"{verb} {copy.path}: {copy.events:,} events, log head {_positions(copy.heads)}, "
        f"{copy.size / 1e6:,.1f} MB in {copy.seconds:.2f} s\n"
        f"processors resume from their checkpoints in it: {resumes or 'none yet'}"
    )


def backup(
    path: Annotated[
        Path,
        typer.Argument(help="The backup file to write; it must not exist.", dir_okay=False),
    ],
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Copy the SQLite store to PATH while `tillflow serve` and workers keep writing: one
    consistent moment of the log, the views and the processors' checkpoints. PostgreSQL:
    see the README (pg_dump, base backups)."""
    try:
        with _progress_bar(f"backing up {describe_database(database)}") as progress:
            copy = backup_store(database, path, progress=progress)
    except BackupRefused as refused:
        raise fail(str(refused), 1) from None
    except (ConfigurationError, TillflowError) as error:
        raise fail(str(error), 2) from None
    show(_describe(copy, f"backed up {describe_database(database)} to"))


def restore(
    backup_file: Annotated[
        Path,
        typer.Argument(
            metavar="BACKUP", help="A file written by `tillflow backup`.", dir_okay=False
        ),
    ],
    database: DatabaseOption = "tillflow.db",
    force: Annotated[bool, typer.Option("--force", help="Replace the store if it exists.")] = False,
) -> None:
    """Make BACKUP the SQLite store, once checked (integrity, schema version). Refused while
    any process has the store open (stop `tillflow serve` and workers first), and over an
    existing store without --force. Processors resume from the checkpoints in the backup."""
    try:
        with _progress_bar(f"restoring {backup_file.name}") as progress:
            copy = restore_store(backup_file, database, force=force, progress=progress)
    except (ConfigurationError, TillflowError) as refused:
        raise fail(str(refused), 1) from None
    show(_describe(copy, f"restored {backup_file} to"))
