"""The server's configuration: read once at start-up from ``TILLFLOW_*`` environment
variables (and command-line overrides) into a frozen :class:`Settings`.

=========================  ===============  ==================================================
variable                   default          meaning
=========================  ===============  ==================================================
``TILLFLOW_DATABASE``      ``tillflow.db``  SQLite file path (``sqlite:///path`` too),
                                            ``memory``, or a PostgreSQL URL
                                            (``postgresql://user@host:5432/db``)
``TILLFLOW_HOST``          ``127.0.0.1``    address ``tillflow serve`` listens on
``TILLFLOW_PORT``          ``8000``         port (1..65535)
``TILLFLOW_LOG_LEVEL``     ``info``         ``critical``, ``error``, ``warning``, ``info``,
                                            ``debug``
``TILLFLOW_WORKERS``       ``0``            HTTP worker processes of ``tillflow serve``
                                            (0..64): 0 serves in one process; N ≥ 1 share
                                            one socket and the processors run in the
                                            supervising process
``TILLFLOW_GC_THRESHOLD``  ``50000``        container allocations between two collections of
                                            Python's youngest generation (0..10,000,000; 0
                                            keeps Python's 700): see
                                            :mod:`tillflow.service.collector`
``TILLFLOW_STALL_AFTER``   ``30``           seconds a processor may be behind without its
                                            checkpoint moving before it shows as
                                            ``stalled`` (0.1..86400)
``TILLFLOW_TERMINAL_       ``0``            seconds the simulated card terminal takes per
LATENCY``                                   answer (0..60)
``TILLFLOW_TERMINAL_       (none)           card references the simulated terminal declines
DECLINE_CARDS``                             (comma-separated)
``TILLFLOW_TERMINAL_       ``0``            the simulated terminal declines every n-th new
DECLINE_EVERY``                             authorization (0: none)
``TILLFLOW_SHOP_NAME``     ``tillflow``     the shop's name, printed on every receipt
``TILLFLOW_TIMEZONE``      ``UTC``          the shop's IANA time zone (``Europe/Paris``):
                                            receipts print times in it, sales
                                            per hour and day are counted in it
``TILLFLOW_BUSY_TIMEOUT``  ``5``            seconds a write waits for an SQLite file locked
                                            by another process before it is refused
                                            with 503 and ``Retry-After`` (0.01..3600)
=========================  ===============  ==================================================

``tillflow serve`` takes cards through a simulated terminal
(:class:`~tillflow.shop.sale.simulated_terminal.SimulatedTerminal`) that approves every card
except as the three ``TILLFLOW_TERMINAL_*`` settings say; it keeps its answers in the
server's memory. A real terminal implements
:class:`~tillflow.shop.sale.payments.PaymentTerminal` and is given to ``create_app``.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tillflow.engine.stalls import DEFAULT_STALL_AFTER, STALL_AFTER_RANGE
from tillflow.service.bootstrap import BUSY_TIMEOUT, ConfigurationError
from tillflow.service.collector import DEFAULT_THRESHOLD, MOST_THRESHOLD
from tillflow.shop import validation
from tillflow.shop.errors import InvalidField
from tillflow.shop.receipts.model import ShopHeader
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class Settings(BaseSettings):
    """Validated, immutable settings; build them with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="TILLFLOW_", frozen=True, extra="ignore", case_sensitive=False
    )

    database: str = "tillflow.db"
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "info"
    workers: int = Field(default=0, ge=0, le=64)
    gc_threshold: int = Field(default=DEFAULT_THRESHOLD, ge=0, le=MOST_THRESHOLD)
    stall_after: float = Field(
        default=DEFAULT_STALL_AFTER,
        ge=STALL_AFTER_RANGE[0],
        le=STALL_AFTER_RANGE[1],
        allow_inf_nan=False,
    )
    terminal_latency: float = Field(default=0.0, ge=0.0, le=60.0, allow_inf_nan=False)
    terminal_decline_cards: str = ""
    terminal_decline_every: int = Field(default=0, ge=0, le=1_000_000)
    shop_name: str = "tillflow"
    timezone: str = "UTC"
    busy_timeout: float = Field(default=BUSY_TIMEOUT, ge=0.01, le=3600.0, allow_inf_nan=False)

    @field_validator("database")
    @classmethod
    def _usable_database(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name an SQLite file, a postgresql:// URL or 'memory'")
        return value

    @field_validator("shop_name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        try:
            return validation.name("shop_name", value)
        except InvalidField as error:
            raise ValueError(error.reason) from None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


ENVIRONMENT_NAMES = {
    "database": "TILLFLOW_DATABASE",
    "host": "TILLFLOW_HOST",
    "port": "TILLFLOW_PORT",
    "log_level": "TILLFLOW_LOG_LEVEL",
    "workers": "TILLFLOW_WORKERS",
    "gc_threshold": "TILLFLOW_GC_THRESHOLD",
    "stall_after": "TILLFLOW_STALL_AFTER",
    "terminal_latency": "TILLFLOW_TERMINAL_LATENCY",
    "terminal_decline_cards": "TILLFLOW_TERMINAL_DECLINE_CARDS",
    "terminal_decline_every": "TILLFLOW_TERMINAL_DECLINE_EVERY",
    "shop_name": "TILLFLOW_SHOP_NAME",
    "timezone": "TILLFLOW_TIMEZONE",
    "busy_timeout": "TILLFLOW_BUSY_TIMEOUT",
}


def simulated_terminal(settings: Settings) -> SimulatedTerminal:
    """The card terminal ``tillflow serve`` uses, as ``settings`` configure it."""
    cards = {card.strip() for card in settings.terminal_decline_cards.split(",")}
    return SimulatedTerminal(
        latency=settings.terminal_latency,
        decline_cards=frozenset(cards - {""}),
        decline_every=settings.terminal_decline_every,
    )


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``. Raises ``ValueError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"no time zone {name!r}: use an IANA name like Europe/Paris") from None


def shop_header(settings: Settings) -> ShopHeader:
    """What the shop's receipts print about it, as ``settings`` say."""
    return ShopHeader(settings.shop_name, time_zone(settings.timezone))


def load_settings(**overrides: Any) -> Settings:
    """The environment's settings with ``overrides`` (``None`` values ignored) on top.

    Raises :class:`ConfigurationError` with one line naming the setting and the reason.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "settings"
            where = (
                f"--{name.replace('_', '-')}"
                if name in given
                else ENVIRONMENT_NAMES.get(name, name)
            )
            reason = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {reason}")
        raise ConfigurationError("; ".join(problems)) from None
