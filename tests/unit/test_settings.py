"""Configuration: TILLFLOW_* read once into frozen settings; anything invalid is one clear
line naming the setting, and `tillflow serve` exits 2 on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.service.bootstrap import ConfigurationError
from tillflow.service.collector import DEFAULT_THRESHOLD
from tillflow.service.settings import load_settings, simulated_terminal
from tillflow.shop.sale.payments import Declined

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TILLFLOW_DATABASE",
        "TILLFLOW_HOST",
        "TILLFLOW_PORT",
        "TILLFLOW_LOG_LEVEL",
        "TILLFLOW_WORKERS",
        "TILLFLOW_GC_THRESHOLD",
        "TILLFLOW_TERMINAL_LATENCY",
        "TILLFLOW_TERMINAL_DECLINE_CARDS",
        "TILLFLOW_TERMINAL_DECLINE_EVERY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_a_local_sqlite_file_on_localhost_8000() -> None:
    settings = load_settings()
    assert (settings.database, settings.host, settings.port, settings.log_level) == (
        "tillflow.db",
        "127.0.0.1",
        8000,
        "info",
    )


def test_the_environment_is_read_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILLFLOW_DATABASE", "/srv/shop.db")
    monkeypatch.setenv("TILLFLOW_PORT", "9000")
    monkeypatch.setenv("TILLFLOW_LOG_LEVEL", "WARNING")
    settings = load_settings(port=9100, host=None)
    assert (settings.database, settings.port, settings.log_level) == (
        "/srv/shop.db",
        9100,
        "warning",
    )


def test_a_postgres_url_is_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILLFLOW_DATABASE", "postgresql://till@db:5432/shop")
    assert load_settings().database == "postgresql://till@db:5432/shop"
    assert load_settings(database="postgres://db/shop").database == "postgres://db/shop"


def test_one_process_serves_unless_workers_are_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().workers == 0
    monkeypatch.setenv("TILLFLOW_WORKERS", "3")
    assert load_settings().workers == 3
    assert load_settings(workers=1).workers == 1


def test_the_collector_threshold_defaults_to_tillflows_and_may_be_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().gc_threshold == DEFAULT_THRESHOLD
    monkeypatch.setenv("TILLFLOW_GC_THRESHOLD", "0")
    assert load_settings().gc_threshold == 0
    assert load_settings(gc_threshold=20_000).gc_threshold == 20_000


async def test_the_simulated_terminal_is_configured_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = simulated_terminal(load_settings())  # approves every card, at once
    assert (default.latency, set(default.decline_cards), default.decline_every) == (0, set(), 0)
    monkeypatch.setenv("TILLFLOW_TERMINAL_LATENCY", "0.01")
    monkeypatch.setenv("TILLFLOW_TERMINAL_DECLINE_CARDS", "stolen, broke,")
    monkeypatch.setenv("TILLFLOW_TERMINAL_DECLINE_EVERY", "3")
    terminal = simulated_terminal(load_settings())
    assert (terminal.latency, set(terminal.decline_cards), terminal.decline_every) == (
        0.01,
        {"stolen", "broke"},
        3,
    )
    assert isinstance(await terminal.authorize("c-1", 100, "EUR", "broke"), Declined)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.port = 1


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("TILLFLOW_PORT", "eighty", "TILLFLOW_PORT"),
        ("TILLFLOW_PORT", "0", "TILLFLOW_PORT"),
        ("TILLFLOW_PORT", "65536", "TILLFLOW_PORT"),
        ("TILLFLOW_LOG_LEVEL", "loud", "TILLFLOW_LOG_LEVEL"),
        ("TILLFLOW_WORKERS", "-1", "TILLFLOW_WORKERS"),
        ("TILLFLOW_WORKERS", "65", "TILLFLOW_WORKERS"),
        ("TILLFLOW_GC_THRESHOLD", "-1", "TILLFLOW_GC_THRESHOLD"),
        ("TILLFLOW_GC_THRESHOLD", "lots", "TILLFLOW_GC_THRESHOLD"),
        ("TILLFLOW_DATABASE", "  ", "TILLFLOW_DATABASE"),
        ("TILLFLOW_TERMINAL_LATENCY", "-1", "TILLFLOW_TERMINAL_LATENCY"),
        ("TILLFLOW_TERMINAL_LATENCY", "nan", "TILLFLOW_TERMINAL_LATENCY"),
        ("TILLFLOW_TERMINAL_DECLINE_EVERY", "-2", "TILLFLOW_TERMINAL_DECLINE_EVERY"),
    ],
)
def test_invalid_settings_are_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert named in result.output
    assert result.output.strip().count("\n") == 0, result.output


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--port", "0"], "--port"),
        (["--log-level", "chatty"], "--log-level"),
        (["--workers", "100"], "--workers"),
        (["--gc-threshold", "-5"], "--gc-threshold"),
    ],
)
def test_invalid_arguments_to_serve_exit_2_naming_the_option(
    arguments: list[str], named: str
) -> None:
    result = runner.invoke(app, ["serve", *arguments])
    assert result.exit_code == 2
    assert named in result.output


def test_serve_refuses_a_database_in_a_missing_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--database", str(tmp_path / "nowhere" / "shop.db")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
