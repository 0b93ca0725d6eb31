"""The command line: the demo verifies itself; bad input is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tillflow.cli import app

runner = CliRunner()


def test_demo_runs_and_verifies_the_views(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    result = runner.invoke(
        app, ["demo", "--duration", "1", "--rate", "500", "--database", str(database)]
    )
    assert result.exit_code == 0, result.output
    assert "verified:" in result.output
    status = runner.invoke(app, ["status", "--database", str(database)])
    assert status.exit_code == 0, status.output
    for name in ("ledger", "totals", "audit"):
        assert name in status.output


def test_demo_on_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    result = runner.invoke(app, ["demo", "--duration", "1", "--database", str(bogus)])
    assert result.exit_code == 2
    assert "not a tillflow database" in result.output
    assert bogus.read_text() == "hello"


def test_status_of_a_missing_database_is_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--database", str(tmp_path / "missing.db")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_bad_option_values_are_usage_errors() -> None:
    result = runner.invoke(app, ["demo", "--writers", "0"])
    assert result.exit_code == 2


def test_postgres_url_is_refused_until_the_backend_exists(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--database", "postgresql://localhost/test"])
    assert result.exit_code == 2
