"""A `tillflow worker` process as a fault run starts it (from :mod:`tests.faults.forking`):
the CLI's own entry point with its ``application_name`` (``PGAPPNAME``) and its output in a
log file; ``unfenced`` takes the fence out of its batch commits (the negative control: its
batches still compare-and-set the checkpoint, only the lease check is gone)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from typing import Any

from tillflow.cli import main
from tillflow.engine.postgres import PostgresEventStore


def run_worker(arguments: list[str], application_name: str, log: str, unfenced: bool) -> None:
    """The process's entry point: ``tillflow worker *arguments``."""
    os.environ["PGAPPNAME"] = application_name
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, sys.stdout.fileno())
    os.dup2(fd, sys.stderr.fileno())
    os.close(fd)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # its stacks, if it hangs
    if unfenced:
        unfence()
    sys.argv = ["tillflow", "worker", *arguments]
    main()


def unfence() -> None:
    """Make every batch commit of this process ignore its fence."""
    commit_batch = PostgresEventStore.commit_batch

    def unfenced(self: PostgresEventStore, *args: Any, fence: Any = None, **kwargs: Any) -> Any:
        return commit_batch(self, *args, **kwargs)

    PostgresEventStore.commit_batch = unfenced  # type: ignore[method-assign]
