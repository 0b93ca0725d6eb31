"""Processors of one process read new events written by another process from the file
once between them: the first filtered read near the head reads every type and remembers
it, the next ones are served from the ring; a replay of old events leaves the ring alone."""

from __future__ import annotations

from pathlib import Path

from tillflow.engine import NewEvent, SqliteEventStore


def _write(store: SqliteEventStore, count: int) -> None:
    for number in range(count):
        kind = "Sold" if number % 2 == 0 else "Taken"
        store.append(f"s-{number}", [NewEvent(kind, {"n": number})])


def test_the_first_filtered_read_at_the_head_serves_the_others(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    tills, shop = SqliteEventStore(path), SqliteEventStore(path)
    with tills, shop:
        _write(tills, 10)  # written by another process's handle: not in the shop's ring
        sold = shop.read(0, 0, 10, types={"Sold"})
        assert [event.data for event in sold] == [b'{"n":%d}' % n for n in range(0, 10, 2)]
        hits = shop.recent.hits
        taken = shop.read(0, 0, 10, types={"Taken"})  # another processor, another type
        assert shop.recent.hits == hits + 1  # from the ring: the file was not read again
        assert [event.data for event in taken] == [b'{"n":%d}' % n for n in range(1, 10, 2)]
        assert shop.read(0, 0, 10) == tills.read(0, 0, 10)  # the same events, every field


def test_only_the_part_the_ring_lacks_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    tills, shop = SqliteEventStore(path), SqliteEventStore(path)
    with tills, shop:
        _write(tills, 6)
        shop.read(0, 0, 6, types={"Sold"})
        _write(tills, 4)  # positions 7–10
        assert shop.recent.prefix(0, 10)[1] == 6
        assert [event.position for event in shop.read(0, 3, 10, types={"Taken"})] == [4, 6, 8, 10]
        assert shop.recent.prefix(0, 10)[1] == 10


def test_a_replay_far_behind_the_head_does_not_evict_what_live_readers_need(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    tills, shop = SqliteEventStore(path), SqliteEventStore(path, recent_events=16)
    with tills, shop:
        _write(tills, 40)
        shop.read(0, 36, 40, types={"Sold"})  # a live processor at the head
        held = shop.recent.prefix(36, 40)[0]
        replayed = shop.read(0, 0, 8, types={"Sold"})  # a rebuild from the start
        assert [event.position for event in replayed] == [1, 3, 5, 7]
        assert shop.recent.prefix(36, 40)[0] == held  # the head is still in the ring
        assert shop.recent.prefix(0, 8) == ([], 0)  # and the replay was not remembered


def test_what_the_ring_holds_between_other_writers_commits_is_not_read_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    tills, shop = SqliteEventStore(path), SqliteEventStore(path)
    with tills, shop:
        _write(tills, 3)  # 1–3: another process's commits, not in the shop's ring
        _write(shop, 3)  # 4–6: the shop's own, held as its writer inserted them
        _write(tills, 3)  # 7–9
        _write(shop, 1)  # 10
        size = shop.recent.size
        own = {position: shop.recent._slots[position % size] for position in (4, 6, 10)}
        rows = [slot for slot in own.values() if isinstance(slot, tuple)]  # as inserted
        assert [row[4] for row in rows] == ["Sold"] * 3
        taken = shop.read(0, 0, 10, types={"Taken"})
        assert [event.position for event in taken] == [2, 5, 8]
        assert all(shop.recent._slots[p % size] is own[p] for p in own)  # not read again
        assert shop.read(0, 0, 10) == tills.read(0, 0, 10)  # and every event is whole
