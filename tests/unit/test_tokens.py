"""Access tokens as events: shown once, stored only as SHA-256 hashes, revocable, seen by
every reader of the store."""

from __future__ import annotations

import pytest

from tillflow.engine import MemoryEventStore
from tillflow.service.access_tokens import (
    TOKENS_STREAM,
    Role,
    TokenBook,
    TokenNameTaken,
    UnknownToken,
    hash_secret,
)
from tillflow.service.bootstrap import service_registry
from tillflow.shop.errors import InvalidField


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore(registry=service_registry())


def test_a_token_is_random_shown_once_and_stored_only_as_its_hash(
    store: MemoryEventStore,
) -> None:
    book = TokenBook(store)
    secret, token = book.create("till-3", Role.TILL)
    other, _ = book.create("till-4", Role.TILL)
    assert secret != other
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert token.hash == hash_secret(secret)
    recorded = b"".join(event.data for event in store.read_stream(TOKENS_STREAM))
    assert secret.encode() not in recorded
    assert token.hash.encode() in recorded
    found = book.authenticate(secret)
    assert found is not None
    assert (found.name, found.role, found.active) == ("till-3", Role.TILL, True)
    assert book.authenticate(secret + "x") is None
    assert book.authenticate("") is None


def test_a_revoked_token_is_known_but_inactive_and_its_name_can_be_reused(
    store: MemoryEventStore,
) -> None:
    book = TokenBook(store)
    secret, _ = book.create("alice", Role.MANAGER)
    with pytest.raises(TokenNameTaken):
        book.create("alice", Role.VIEWER)
    revoked = book.revoke("alice")
    assert revoked.revoked_at is not None
    found = book.authenticate(secret)
    assert found is not None
    assert not found.active
    with pytest.raises(UnknownToken):
        book.revoke("alice")
    again, _ = book.create("alice", Role.VIEWER)
    assert book.authenticate(again) is not None
    assert [(t.name, t.role, t.active) for t in book.tokens()] == [
        ("alice", Role.MANAGER, False),
        ("alice", Role.VIEWER, True),
    ]


def test_another_reader_sees_creations_and_revocations(store: MemoryEventStore) -> None:
    server, cli = TokenBook(store), TokenBook(store)
    assert server.tokens() == []
    secret, _ = cli.create("bob", Role.VIEWER)
    assert server.authenticate(secret) is not None
    cli.revoke("bob")
    found = server.authenticate(secret)
    assert found is not None
    assert not found.active


def test_two_writers_with_stale_views_both_succeed(store: MemoryEventStore) -> None:
    first, second = TokenBook(store), TokenBook(store)
    first.refresh()
    second.refresh()
    first.create("a", Role.TILL)
    second.create("b", Role.TILL)  # its version is stale: the append conflicts, then retries
    assert sorted(t.name for t in first.tokens()) == ["a", "b"]


@pytest.mark.parametrize(("name", "role"), [("", "till"), ("a b", "till"), ("ok", "admin")])
def test_bad_names_and_roles_are_refused(store: MemoryEventStore, name: str, role: str) -> None:
    with pytest.raises(InvalidField):
        TokenBook(store).create(name, role)
    assert store.read_stream(TOKENS_STREAM) == []
