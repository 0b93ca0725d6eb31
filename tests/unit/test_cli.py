"""The command line: the demos verify themselves; bad input is one line and exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.postgres_cluster import free_port
from tillflow.cli import app
from tillflow.demos.shop import ShopDemo, Verdict

runner = CliRunner()


def test_shop_demo_runs_verifies_the_report_and_shows_oversells(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    result = runner.invoke(app, ["demo", "--duration", "1.5", "--database", str(database)])
    assert result.exit_code == 0, result.output
    assert "report verified:" in result.output
    assert "match the truth" in result.output
    oversold = re.search(r"oversold: ([\d,]+) units", result.output)
    assert oversold is not None, result.output
    assert int(oversold.group(1).replace(",", "")) > 0
    assert "still short at the end" in result.output
    status = runner.invoke(app, ["status", "--database", str(database)])
    assert status.exit_code == 0, status.output
    for name in ("inventory", "reporting"):
        assert name in status.output


def test_shop_demo_says_plainly_when_the_report_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify = ShopDemo.verify

    def with_a_wrong_truth(demo: ShopDemo, elapsed: float, drain_seconds: float) -> Verdict:
        demo.truth.received("milk", 1)  # a delivery the shop never saw
        return verify(demo, elapsed, drain_seconds)

    monkeypatch.setattr(ShopDemo, "verify", with_a_wrong_truth)
    database = tmp_path / "shop.db"
    result = runner.invoke(app, ["demo", "--duration", "0.3", "--database", str(database)])
    assert result.exit_code == 1, result.output
    assert "report verified" not in result.output
    assert "milk: received shows" in result.output
    assert "report does NOT match the truth" in result.output


def test_shop_demo_needs_a_new_database(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    first = runner.invoke(app, ["demo", "--duration", "0.2", "--database", str(database)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["demo", "--duration", "0.2", "--database", str(database)])
    assert again.exit_code == 2
    assert "already holds events" in again.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tills", "0"),
        ("--tills", "1000"),
        ("--rate", "0"),
        ("--rate", "inf"),
        ("--duration", "0"),
        ("--duration", "nan"),
        ("--duration", "-5"),
    ],
)
def test_shop_demo_bad_option_values_are_one_line_and_exit_code_2(
    option: str, value: str, tmp_path: Path
) -> None:
    database = tmp_path / "never.db"
    result = runner.invoke(app, ["demo", option, value, "--database", str(database)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0, result.output
    assert option in result.output
    assert not database.exists()


def test_engine_demo_runs_and_verifies_the_views(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    result = runner.invoke(
        app, ["engine-demo", "--duration", "1", "--rate", "500", "--database", str(database)]
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
    for command in ("demo", "engine-demo"):
        result = runner.invoke(app, [command, "--duration", "1", "--database", str(bogus)])
        assert result.exit_code == 2
        assert "not a tillflow database" in result.output
        assert bogus.read_text() == "hello"


def test_status_of_a_missing_database_is_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--database", str(tmp_path / "missing.db")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_bad_option_values_are_usage_errors() -> None:
    result = runner.invoke(app, ["engine-demo", "--writers", "0"])
    assert result.exit_code == 2


def test_an_unreachable_postgres_server_is_one_line_and_exit_code_2() -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/test"
    result = runner.invoke(app, ["status", "--database", url])
    assert result.exit_code == 2
    assert "refused" in result.output
    assert "s3cret" not in result.output
    assert result.output.strip().count("\n") == 0, result.output


def test_simulate_passes_the_barrier_design_and_catches_the_naive_one() -> None:
    good = runner.invoke(app, ["simulate", "--seeds", "30"])
    assert good.exit_code == 0, good.output
    assert "every property held" in good.output
    naive = runner.invoke(app, ["simulate", "--design", "naive", "--seeds", "100"])
    assert naive.exit_code == 1
    assert "--replay" in naive.output
    replay = runner.invoke(app, ["simulate", "--design", "naive", "--replay", "0"])
    assert replay.exit_code == 1
    assert "violation" in replay.output


def test_simulate_refuses_an_unknown_design() -> None:
    result = runner.invoke(app, ["simulate", "--design", "optimistic"])
    assert result.exit_code == 2
    assert "barrier" in result.output
