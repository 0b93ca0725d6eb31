"""``tillflow sales hourly | daily``: sales per hour of a day or per day of a range, as CSV
(the format of ``GET /sales/hourly.csv`` and ``/sales/daily.csv``), in the shop's time zone
(``TILLFLOW_TIMEZONE``, or ``--timezone``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Annotated

import typer

from tillflow.cli.common import DatabaseOption, fail, open_existing
from tillflow.engine import TillflowError
from tillflow.service.bootstrap import ConfigurationError
from tillflow.service.exports import sales_csv
from tillflow.service.settings import load_settings, time_zone
from tillflow.shop.reporting.sales_queries import SalesReader

app = typer.Typer(
    help="Sales per hour or per day as CSV, in the shop's time zone.", no_args_is_help=True
)

ZoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="An IANA time zone (Europe/Paris); default TILLFLOW_TIMEZONE, else UTC.",
        show_default=False,
    ),
]


def _zone(name: str | None) -> tzinfo:
    """The zone named, or the shop's; a bad one is one line and exit code 2."""
    try:
        return time_zone(load_settings(timezone=name).timezone)
    except (ConfigurationError, ValueError) as error:
        raise fail(str(error), 2) from None


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}={text!r}: must be a date (YYYY-MM-DD)", 2) from None


@app.command()
def hourly(
    day: Annotated[
        str | None,
        typer.Option("--date", help="The day (YYYY-MM-DD); default: today.", show_default=False),
    ] = None,
    timezone: ZoneOption = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Every hour of a day (23 to 25 of them) with its sales, refunds, VAT and takings by
    tender, as of the report's last handled event."""
    zone = _zone(timezone)
    chosen = _day(day, "--date") if day is not None else datetime.now(UTC).astimezone(zone).date()
    store = open_existing(database)
    try:
        typer.echo(sales_csv(SalesReader(store).hourly(chosen, zone), "hour"), nl=False)
    finally:
        store.close()


@app.command()
def daily(
    first: Annotated[str, typer.Option("--from", help="The first day (YYYY-MM-DD).")],
    last: Annotated[str, typer.Option("--to", help="The last day, included (at most 366).")],
    timezone: ZoneOption = None,
    database: DatabaseOption = "tillflow.db",
) -> None:
    """Every day of a range with its sales, refunds, VAT and takings by tender."""
    zone = _zone(timezone)
    start, end = _day(first, "--from"), _day(last, "--to")
    store = open_existing(database)
    try:
        try:
            cut = SalesReader(store).daily(start, end, zone)
        except TillflowError as refusal:
            raise fail(str(refusal), 2) from None
        typer.echo(sales_csv(cut, "day"), nl=False)
    finally:
        store.close()
