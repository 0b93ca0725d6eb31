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


def test_a_password_in_the_url_is_never_printed(postgres_url: str) -> None:
    """The private cluster trusts every login, so the password is accepted and ignored."""
    with_password = postgres_url.replace("@127.0.0.1", ":s3cret-pw@127.0.0.1", 1)
    assert with_password != postgres_url
    for arguments in (
        ["demo", "--duration", "1"],
        ["status"],
        ["token", "create", "--role", "till", "--name", "till-1"],
        ["token", "list"],
        ["demo", "--duration", "1"],  # refused: the database holds events
    ):
        result = runner.invoke(app, [*arguments, "--database", with_password])
        assert "s3cret-pw" not in result.output, arguments
        assert result.exit_code in (0, 2), result.output
