"""``tillflow status`` says which processors are stalled, from the SQLite file alone: the
checkpoints and their times are made an hour old in the file (no waiting), Inventory is
behind, the report behind it, the cash-up caught up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import BatchEffects, SqliteEventStore
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import service_registry

runner = CliRunner()
HOUR = 3600.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Three events; Inventory and the report passed the first an hour ago, the cash-up
    numbering all three."""
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        book = TokenBook(store)
        for name in ("a", "b", "c"):
            book.create(name, Role.VIEWER)
        for name, upto in (("inventory", 1), ("reporting", 1), ("tills", 3)):
            store.commit_batch(name, 0, 0, upto, BatchEffects())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET recorded_at = recorded_at - ?", (HOUR,))
        conn.execute("UPDATE checkpoints SET updated_at = updated_at - ?", (HOUR,))
    conn.close()
    return path


def rows(output: str) -> dict[str, str]:
    """The table's lines by processor name."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 2 and cells[1] in ("inventory", "reporting", "tills"):
            found[cells[1]] = line
    return found


def test_status_names_the_stalled_processors_and_what_they_wait_on(database: Path) -> None:
    result = runner.invoke(app, ["status", "--database", str(database)], terminal_width=200)
    assert result.exit_code == 0, result.output
    found = rows(result.output)
    assert "STALLED" in found["inventory"] and "3,600" in found["inventory"], result.output
    assert "STALLED" in found["reporting"] and "inventory" in found["reporting"], result.output
    assert "caught up" in found["tills"] and "STALLED" not in found["tills"]


def test_status_takes_the_threshold_from_the_environment(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TILLFLOW_STALL_AFTER", str(2 * HOUR))
    result = runner.invoke(app, ["status", "--database", str(database)], terminal_width=200)
    assert result.exit_code == 0, result.output
    found = rows(result.output)
    assert "behind" in found["inventory"] and "STALLED" not in result.output, result.output


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf", "86401"])
def test_a_bad_threshold_is_a_usage_error_naming_the_option(database: Path, value: str) -> None:
    result = runner.invoke(app, ["status", "--database", str(database), "--stall-after", value])
    assert result.exit_code == 2, result.output
    assert "--stall-after" in result.output
