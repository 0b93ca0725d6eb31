"""The PostgreSQL store shares a lane's read among its processors only up to a head it
has seen: what commits later is never hidden by a read that reached past the head."""

from __future__ import annotations

from tillflow.engine import AppendRequest, NewEvent
from tillflow.engine.postgres import PostgresEventStore

KINDS = ["CheckedOut"]


def _checkouts(store: PostgresEventStore, numbers: range) -> None:
    for number in numbers:
        store.append_many([AppendRequest(f"checkout-{number}", [NewEvent("CheckedOut", {})])])


def test_a_read_past_the_head_is_not_kept_for_the_next_reader(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url, lanes=1)
    try:
        _checkouts(store, range(3))
        assert len(store.read(0, 0, 1000, types=KINDS)) == 3  # no head seen yet
        _checkouts(store, range(3, 5))
        assert len(store.read(0, 0, 1000, types=KINDS)) == 5
    finally:
        store.close()


def test_processors_reading_up_to_a_head_seen_share_one_read(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url, lanes=1)
    try:
        _checkouts(store, range(4))
        head = store.head(0)
        first = store.read(0, 0, head, types=["CheckedOut", "ItemsReturned"])
        fetched = store._windows.fetched
        second = store.read(0, 0, head, types=KINDS)  # another processor, fewer types
        assert second == first and len(second) == 4
        assert store._windows.fetched == fetched
        _checkouts(store, range(4, 6))
        later = store.read(0, head, store.head(0), types=KINDS)
        assert [event.stream for event in later] == ["checkout-4", "checkout-5"]
    finally:
        store.close()
