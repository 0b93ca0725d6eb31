"""Access tokens for the HTTP API, kept as events so they are durable and auditable.

::

    tillflow token create --role till --name till-3
        └─► TokenCreated{name, role, hash, created_at} ─┐
    tillflow token revoke --name till-3                 ├─► stream "auth-tokens"
        └─► TokenRevoked{name, hash, revoked_at} ───────┘
                                                        ▼
    server: TokenBook (in memory, refreshed by reading after the last version it knows)

A token is ``secrets.token_urlsafe(32)`` (256 random bits), shown once when created; only
its SHA-256 is recorded. Presented tokens are hashed and compared with every known hash in
constant time (``hmac.compare_digest``, no early exit).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import msgspec

from tillflow.engine import (
    ConcurrencyConflict,
    EventStore,
    NewEvent,
    StoreUnavailable,
    TillflowError,
)
from tillflow.shop import validation
from tillflow.shop.errors import InvalidField

TOKENS_STREAM: Final = "auth-tokens"
RETRIES: Final = 20
AWAY_PAUSE: Final = 1.0
"""Seconds authentication answers from the tokens already read after the database was
found away, before it asks again (requests must not each wait for it)."""


class Role(enum.StrEnum):
    """What a token may do. ``till``: checkouts and returns. ``manager``: catalog and stock,
    and everything a viewer may. ``viewer``: the report, status, the live stream, metrics."""

    TILL = "till"
    MANAGER = "manager"
    VIEWER = "viewer"


class TokenCreated(msgspec.Struct, frozen=True):
    name: str
    role: str
    hash: str
    created_at: datetime


class TokenRevoked(msgspec.Struct, frozen=True):
    name: str
    hash: str
    revoked_at: datetime


TOKEN_EVENTS: dict[str, type] = {"TokenCreated": TokenCreated, "TokenRevoked": TokenRevoked}


class AccessToken(msgspec.Struct, frozen=True):
    """A token as recorded (never the secret itself)."""

    name: str
    role: Role
    hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenNameTaken(TillflowError):
    """``create`` for a name that already has an active token: revoke it first."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"name={name!r}: an active token already has this name; revoke it first")


class UnknownToken(TillflowError):
    """``revoke`` for a name without an active token."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"name={name!r}: no active token has this name")


def hash_secret(secret: str) -> str:
    """The SHA-256 of a token, as hex: what the store records."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class TokenBook:
    """The tokens recorded in a store, as of ``version`` of the ``auth-tokens`` stream.

    Every read first folds in what the stream recorded since (one cheap query when nothing
    changed), so a token created or revoked by another process counts at the next request.
    Thread-safe.
    """

    def __init__(
        self,
        store: EventStore,
        clock: Callable[[], datetime] = _now,
        away: Callable[[], bool] = lambda: False,
    ) -> None:
        """``away``: whether the database is known to be away now (a runtime's health):
        then the tokens read before answer without asking it, so that a server's event loop
        does not wait on a database that cannot answer."""
        self.store = store
        self.clock = clock
        self.away = away
        self.version = 0
        self._tokens: list[AccessToken] = []
        self._lock = threading.Lock()
        self._away_until = 0.0  # the database was away: no refresh before then

    def refresh(self) -> TokenBook:
        """Fold in the events recorded after ``version``."""
        with self._lock:
            for event in self.store.read_stream(TOKENS_STREAM, after_version=self.version):
                if event.type == "TokenCreated":
                    created = event.decode(TokenCreated)
                    self._tokens.append(
                        AccessToken(
                            created.name, Role(created.role), created.hash, created.created_at
                        )
                    )
                elif event.type == "TokenRevoked":
                    revoked = event.decode(TokenRevoked)
                    self._tokens = [
                        msgspec.structs.replace(token, revoked_at=revoked.revoked_at)
                        if token.hash == revoked.hash
                        else token
                        for token in self._tokens
                    ]
                self.version = event.version
        return self

    def tokens(self) -> list[AccessToken]:
        """Every token ever created, active or revoked, oldest first."""
        self.refresh()
        return list(self._tokens)

    def authenticate(self, secret: str) -> AccessToken | None:
        """The token whose hash matches ``secret`` (active or revoked: check ``active``), or
        ``None``. Compares against every recorded hash in constant time. With the
        database away (:class:`StoreUnavailable`, or ``away()``), the tokens read before
        answer (nothing can be created or revoked meanwhile) and the next refresh waits
        ``AWAY_PAUSE`` seconds (or until ``away()`` is false); raised if none were read
        yet."""
        if time.monotonic() >= self._away_until and not (self.version and self.away()):
            try:
                self.refresh()
            except StoreUnavailable:
                if not self.version:
                    raise
                self._away_until = time.monotonic() + AWAY_PAUSE
        digest = hash_secret(secret)
        found: AccessToken | None = None
        for token in self._tokens:
            if hmac.compare_digest(token.hash, digest):
                found = token
        return found

    def _active(self, name: str) -> AccessToken | None:
        return next((t for t in self._tokens if t.name == name and t.active), None)

    def create(self, name: str, role: Role | str) -> tuple[str, AccessToken]:
        """Record a new token; returns the secret (show it once, it is not kept) and the
        record. Raises :class:`InvalidField` for a bad name or role,
        :class:`TokenNameTaken` when the name has an active token, and the last
        :class:`ConcurrencyConflict` when ``RETRIES`` appends in a row lost their race."""
        validation.identifier("name", name)
        try:
            chosen = Role(role)
        except ValueError:
            raise InvalidField(
                "role", role, f"must be one of {', '.join(r.value for r in Role)}"
            ) from None
        conflict: ConcurrencyConflict | None = None
        for _ in range(RETRIES):
            self.refresh()
            if self._active(name) is not None:
                raise TokenNameTaken(name)
            secret = secrets.token_urlsafe(32)
            created = TokenCreated(name, chosen.value, hash_secret(secret), self.clock())
            try:
                self.store.append(TOKENS_STREAM, [NewEvent("TokenCreated", created)], self.version)
            except ConcurrencyConflict as lost:
                conflict = lost
                continue
            return secret, AccessToken(name, chosen, created.hash, created.created_at)
        assert conflict is not None  # RETRIES > 0: every round lost a race
        raise conflict  # the last one: what was expected, what was found

    def revoke(self, name: str) -> AccessToken:
        """Revoke the active token named ``name``; returns it as revoked. Raises
        :class:`UnknownToken` if there is none."""
        validation.identifier("name", name)
        conflict: ConcurrencyConflict | None = None
        for _ in range(RETRIES):
            self.refresh()
            token = self._active(name)
            if token is None:
                raise UnknownToken(name)
            revoked = TokenRevoked(name, token.hash, self.clock())
            try:
                self.store.append(TOKENS_STREAM, [NewEvent("TokenRevoked", revoked)], self.version)
            except ConcurrencyConflict as lost:
                conflict = lost
                continue
            return msgspec.structs.replace(token, revoked_at=revoked.revoked_at)
        assert conflict is not None  # RETRIES > 0: every round lost a race
        raise conflict  # the last one: what was expected, what was found
