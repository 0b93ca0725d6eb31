"""A ``tillflow worker`` says on its output when a lane it runs stalls and when it moves
again: real processes on an SQLite file, the report's worker started alone (Inventory runs
nowhere, so the report is held at its barrier), then an Inventory worker."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from tests.e2e.servers import DEADLINE, TILLFLOW, stopped_at_end
from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.sale.commands import AddProduct

STALLED = "warning: processor reporting stalled on lane 0: "
WAITING = ", waiting on inventory"
MOVES = "processor reporting moves again on lane 0"


@contextmanager
def worker(database: Path, log: Path, *names: str) -> Iterator[subprocess.Popen[bytes]]:
    """``tillflow worker --run NAME …`` (its output in ``log``); SIGTERM at the end, and it
    must exit 0."""
    runs = [option for name in names for option in ("--run", name)]
    command = [TILLFLOW, "worker", "--database", str(database), "--stall-after", "0.5", *runs]
    with (
        log.open("wb") as output,
        subprocess.Popen(command, stdout=output, stderr=output) as run,
        stopped_at_end(run, log),
    ):
        yield run


def said(log: Path, *parts: str) -> str:
    """The log (wrapping undone) once it holds every one of ``parts``, within the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        text = re.sub(r"\s+", " ", log.read_text())
        if all(part in text for part in parts):
            return text
        assert time.monotonic() < deadline, (parts, text)
        time.sleep(0.05)


def test_a_worker_says_when_its_lane_stalls_and_when_it_moves_again(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with SqliteEventStore(database, registry=service_registry()) as store:
        Shop(store).sale.add_product(AddProduct("apple", "Apple", 45))
    sold = CliRunner().invoke(
        app, ["checkout", "--database", str(database), "--till", "till-1", "apple=2"]
    )
    assert sold.exit_code == 0, sold.output
    report_log, inventory_log = tmp_path / "reporting.log", tmp_path / "inventory.log"
    with worker(database, report_log, "reporting"):
        text = said(report_log, STALLED, WAITING)
        assert MOVES not in text
        with worker(database, inventory_log, "inventory"):
            said(report_log, MOVES)
    assert "warning: processor" not in inventory_log.read_text()  # it moved all along
    assert re.sub(r"\s+", " ", report_log.read_text()).count(STALLED) == 1  # said once
