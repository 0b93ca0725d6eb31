"""Commands made retry-safe by a key of the caller's (a checkout id, a delivery id...).

Every event of a keyed command's append gets an id derived from the key: the first
``id_from_key(namespace, key)``, the *i*-th one derived from the first. A retry finds the
whole append by those ids and answers with its receipt, which therefore names the same
positions and versions as the first answer did — the last event of the append per lane
and per stream — however many events the command wrote.

::

    with_key("delivery", "d-1", [StockReceived, ShortfallResolved])
        ─► ids: id_from_key("delivery", "d-1"), derived(…, 1)
    recorded_command(store, "delivery", "d-1") ─► both events, in order ─► receipt_of(…)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tillflow.engine.ids import MAX_EMITS_PER_EVENT, derived_event_id, id_from_key
from tillflow.engine.store import EventStore
from tillflow.engine.types import NewEvent, RecordedEvent

FOLLOWERS: Final = "\x00keyed command"
"""The namespace of the followers' derived ids: not printable, so no processor has it."""


def keyed_ids(namespace: str, key: str, count: int) -> list[bytes]:
    """The ids of the ``count`` events of the command keyed ``key`` in ``namespace``."""
    first = id_from_key(namespace, key)
    return [first, *(derived_event_id(FOLLOWERS, first, index) for index in range(1, count))]


def with_key(namespace: str, key: str, events: Sequence[NewEvent]) -> list[NewEvent]:
    """``events`` with the ids of the command keyed ``key`` (any ids they had are replaced)."""
    ids = keyed_ids(namespace, key, len(events))
    return [msgspec.structs.replace(event, id=id_) for event, id_ in zip(events, ids, strict=True)]


def recorded_command(store: EventStore, namespace: str, key: str) -> list[RecordedEvent]:
    """The events the command keyed ``key`` recorded, in the order appended; ``[]`` if it
    has not been recorded. An append is atomic, so either all of them are found or none."""
    first = store.get_event(id_from_key(namespace, key))
    if first is None:
        return []
    recorded = [first]
    for index in range(1, MAX_EMITS_PER_EVENT):
        follower = store.get_event(derived_event_id(FOLLOWERS, first.id, index))
        if follower is None:
            break
        recorded.append(follower)
    return recorded
