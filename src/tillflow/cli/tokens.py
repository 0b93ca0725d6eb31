"""``tillflow token create | revoke | list``: the bearer tokens of the HTTP API, recorded
in the store (only their SHA-256; the token itself is printed once, at creation)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tillflow.cli.common import DatabaseOption, console, errors, fail, open_existing
from tillflow.engine import TillflowError
from tillflow.service.access_tokens import Role, TokenBook
from tillflow.service.bootstrap import (
    ConfigurationError,
    describe_database,
    open_store,
    service_registry,
)

app = typer.Typer(
    help="Bearer tokens for the HTTP API: till (checkouts, returns), manager (catalog, stock, "
    "and what a viewer may), viewer (report, status, live stream, metrics).",
    no_args_is_help=True,
)

NameOption = Annotated[
    str, typer.Option("--name", help="Who holds it, e.g. till-3 or alice (letters, digits, .-_:)")
]


@app.command()
def create(
    role: Annotated[Role, typer.Option("--role", help="What the token may do.")],
    name: NameOption,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Create a token and print it (once: only its hash is kept). The database is created
    if it does not exist yet."""
    try:
        store = open_store(database, registry=service_registry())
    except (ConfigurationError, TillflowError) as error:
        raise fail(str(error), 2) from None
    try:
        try:
            secret, token = TokenBook(store).create(name, role)
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        errors.print(
            f"token {token.name!r} ({token.role.value}) created; it is shown once, keep it:",
            highlight=False,
        )
        typer.echo(secret)
    finally:
        store.close()


@app.command()
def revoke(name: NameOption, database: DatabaseOption = "tillflow.db") -> None:
    """Revoke the active token with this name: it stops working at its next request."""
    store = open_existing(database)
    try:
        try:
            token = TokenBook(store).revoke(name)
        except TillflowError as refusal:
            raise fail(f"refused: {refusal}", 1) from None
        console.print(f"token {token.name!r} ({token.role.value}) revoked", highlight=False)
    finally:
        store.close()


@app.command("list")
def list_tokens(database: DatabaseOption = "tillflow.db") -> None:
    """Every token ever created: name, role, when created and revoked (never the token)."""
    store = open_existing(database)
    try:
        table = Table(title=f"tokens in {describe_database(database)}")
        for column in ("name", "role", "created", "revoked", "sha-256"):
            table.add_column(column)
        for token in TokenBook(store).tokens():
            table.add_row(
                token.name,
                token.role.value,
                token.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "" if token.revoked_at is None else token.revoked_at.strftime("%Y-%m-%d %H:%M"),
                token.hash[:12] + "…",
                style="dim" if token.revoked_at is not None else None,
            )
        console.print(table)
    finally:
        store.close()
