"""The command line on PostgreSQL: ``--database postgresql://…`` and ``TILLFLOW_DATABASE``
work for demo, token, checkout, status and report, on a private cluster."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tillflow.cli import app

runner = CliRunner()


def test_the_shop_demo_verifies_itself_on_postgres(postgres_url: str) -> None:
    result = runner.invoke(app, ["demo", "--duration", "1", "--database", postgres_url])
    assert result.exit_code == 0, result.output
    assert "match the truth" in result.output
    status = runner.invoke(app, ["status", "--database", postgres_url])
    assert status.exit_code == 0, status.output
    for name in ("inventory", "reporting"):
        assert name in status.output
    again = runner.invoke(app, ["demo", "--duration", "1", "--database", postgres_url])
    assert again.exit_code == 2
    assert "already holds events" in again.output


def test_tokens_checkouts_and_the_report_from_the_environment(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TILLFLOW_DATABASE", postgres_url)
    token = runner.invoke(app, ["token", "create", "--role", "till", "--name", "till-1"])
    assert token.exit_code == 0, token.output
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert "till-1" in listed.output
    received = runner.invoke(app, ["receive", "apple", "10"])
    assert received.exit_code == 1  # not in the catalog: a refusal of the shop, not of the URL
    report = runner.invoke(app, ["report"])
    assert report.exit_code == 0, report.output
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
