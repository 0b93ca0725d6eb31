"""The shop process a SQLite kill run SIGKILLs (started by :mod:`tests.faults.sqlite`
through a fork server, so that a restart costs no imports).

It opens the shop's SQLite file (durability ``full``), starts every processor, and rings up
checkouts ``start <= seq < stop`` from a few concurrent tills, writing ``ack <seq> <lane>
<position>`` to its pipe once each is acknowledged (one ``write`` per line: a kill never
leaves half a line). Then it idles until killed or, with ``finish``, drains the processors
and writes ``drained``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

from tests.faults.workload import checkout
from tillflow.engine import SqliteEventStore
from tillflow.shop.assembly import REGISTRY, Shop

TILLS = 4
_Say = Callable[[str], None]


def run_shop(db: str, start: int, stop: int, finish: bool, pipe: Connection) -> None:
    """The child's entry point."""
    fd = pipe.fileno()

    def say(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    try:
        asyncio.run(_shop(db, range(start, stop), finish, say))
    except BaseException as error:
        say(f"error {error!r}")
        raise


async def _shop(db: str, seqs: range, finish: bool, say: _Say) -> None:
    say("opening")
    store = SqliteEventStore(db, durability="full", registry=REGISTRY)
    try:
        shop = Shop(store)
        async with shop.runtime() as runtime:
            say("ready")
            left = iter(seqs)
            async with asyncio.TaskGroup() as tills:
                for _ in range(TILLS):
                    tills.create_task(_ring_up(shop, left, say))
            say("rung up")
            if not finish:
                await asyncio.Event().wait()  # until killed
            await runtime.drain(timeout=120)
            say("drained")
    finally:
        store.close()


async def _ring_up(shop: Shop, seqs: Iterator[int], say: _Say) -> None:
    for seq in seqs:
        receipt, _ = await shop.sale.checkout_recorded_async(checkout(seq))
        [(lane, position)] = receipt.positions.items()
        say(f"ack {seq} {lane} {position}")
