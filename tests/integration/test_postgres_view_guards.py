"""A batch's view rows on PostgreSQL, written one statement per kind: every row it read is
written (or only checked) if it is still as read, else the whole batch is refused with
``ViewRowChanged`` naming the row and nothing of it is written; rows it did not read are
written as they are. Each kind of guarded write once with the row unchanged (it commits) and
once changed by another commit in between (refused). So a processor remembers the rows it
met across batches on PostgreSQL instead of reading each again: one changed behind its back
refuses the batch that met it, and the redo reads it afresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tillflow.engine import (
    BatchEffects,
    EventStore,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
)
from tillflow.engine.lane_processor import turn_takers
from tillflow.engine.lanes import lane_of
from tillflow.engine.postgres import PostgresEventStore
from tillflow.engine.postgres.errors import ViewRowChanged

ROW = ("v", "row")
Views = dict[tuple[str, str], bytes | None]

KINDS: dict[str, tuple[bytes | None, Views]] = {
    # kind: (the row before, the batch's writes), the batch having read the row as it was
    "update": (b"1", {ROW: b"2"}),
    "insert": (None, {ROW: b"2"}),
    "delete": (b"1", {ROW: None}),
    "absent": (None, {}),
    "unchanged": (b"1", {}),
}


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(postgres_url, lanes=2)
    try:
        yield opened
    finally:
        opened.close()


def _set(store: PostgresEventStore, lane: int, value: bytes | None) -> None:
    """Another processor's commit writing the row (blind)."""
    position = store.checkpoint("other", lane)
    store.commit_batch("other", lane, position, position + 1, BatchEffects(views={ROW: value}))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_row_still_as_read_is_written_and_a_changed_one_refuses_the_batch(
    store: PostgresEventStore, kind: str
) -> None:
    before, writes = KINDS[kind]
    after = writes.get(ROW, before)
    _set(store, 0, before)
    blind: Views = {("v", "blind"): b"b"}
    effects = BatchEffects(views={**writes, **blind}, read={ROW: before})
    store.commit_batch("g", 0, 0, 1, effects)
    assert store.read_view(*ROW) == after
    assert store.read_view("v", "blind") == b"b"

    _set(store, 0, b"changed")
    effects = BatchEffects(views={**writes, ("v", "blind"): b"c"}, read={ROW: after})
    with pytest.raises(ViewRowChanged) as caught:
        store.commit_batch("g", 0, 1, 2, effects)
    assert "'v'/'row'" in str(caught.value)
    assert store.checkpoint("g", 0) == 1  # nothing of the batch written
    assert store.read_view(*ROW) == b"changed"
    assert store.read_view("v", "blind") == b"b"


def test_the_first_changed_row_is_named_among_many(store: PostgresEventStore) -> None:
    rows = {("v", f"k{n:02}"): f"{n}".encode() for n in range(40)}
    store.commit_batch("g", 0, 0, 1, BatchEffects(views=dict(rows)))
    _set(store, 1, None)  # another row, not read: no matter
    store.commit_batch("other", 1, 1, 2, BatchEffects(views={("v", "k07"): b"x"}))
    store.commit_batch("other", 1, 2, 3, BatchEffects(views={("v", "k31"): b"y"}))
    writes: Views = {address: value + b"!" for address, value in rows.items() if value}
    with pytest.raises(ViewRowChanged) as caught:
        store.commit_batch("g", 0, 1, 2, BatchEffects(views=writes, read=dict(rows)))
    assert "'v'/'k07'" in str(caught.value)
    assert store.read_view("v", "k00") == b"0"


def _count(event: RecordedEvent, session: Session) -> None:
    session.put("v", "total", (session.get("v", "total", int) or 0) + 1)


def _run(store: EventStore) -> tuple[int, int]:
    """Six events counted in two batches, the total set to 100 behind the processor's
    back, one more event: (the total, the reads of the row)."""
    reads = 0
    read_view = store.read_view

    def counting(view: str, key: str) -> bytes | None:
        nonlocal reads
        reads += 1
        return read_view(view, key)

    store.read_view = counting  # type: ignore[method-assign]
    [lane, *_] = turn_takers(store, Processor("counter", _count, types=frozenset({"E"})))
    stream = next(f"s{n}" for n in range(99) if lane_of(f"s{n}", store.lane_count) == 0)
    for _ in range(2):
        store.append(stream, [NewEvent("E") for _ in range(3)])
        lane.step()
    store.commit_batch("other", 0, 0, 1, BatchEffects(views={("v", "total"): b"100"}))
    store.append(stream, [NewEvent("E")])
    lane.step()
    return int(store.read_view("v", "total") or 0), reads


def test_a_processor_reads_a_row_once_and_again_once_changed_behind_its_back(
    store: PostgresEventStore,
) -> None:
    total, reads = _run(store)
    assert total == 101  # the batch that met the change was refused and redone
    assert reads == 2 + 1  # first met, met again after the refusal; and the final look


def test_negative_control_a_store_that_does_not_check_loses_the_change() -> None:
    """Remembered rows on a store that does not check the rows read: the change made
    behind the processor's back is overwritten, which is why only such stores remember."""
    store = MemoryEventStore()
    store.checks_rows_read = True
    total, _ = _run(store)
    assert total == 7
