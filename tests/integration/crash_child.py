"""The child program of the crash-safety test (``test_crash_safety.py``); not a test itself.

Run as ``python crash_child.py DB --start S --stop E [--finish] [--faulty] [--self-kill-after N]``.
It opens the SQLite store at ``DB`` (durability ``full``), starts a runtime with a chain of
three processors and, while they run, appends the deposits ``S <= seq < E`` from a few
concurrent tasks. Each deposit has an id derived from its sequence number, so appending one
again (after a restart) must return the original receipt. After each append returns, the
child prints ``ack <seq> <position> <version>`` and flushes: that line is the
acknowledgement the parent holds the store to.

Without ``--finish`` the child then idles until the parent SIGKILLs it. With ``--finish`` it
drains the runtime (every processor caught up with the head), closes the store and exits 0.

The processors::

    ledger  (Deposited)          balance view per account; emits one Booked per deposit
    totals  (Booked, after ledger) totals view: "all" = {count, sum}, "account-k" = sum
    audit   (everything, after totals) audit view: a counter per event id (must stay 1)

``--faulty`` swaps ``totals`` for a deliberately broken one that writes its "all" row in a
transaction of its own, before the batch's checkpoint commits (the bug the engine's
effects-with-checkpoint commit exists to prevent). With ``--self-kill-after N`` it SIGKILLs
its own process right after its N-th such write, before the checkpoint can commit, so the
negative control observes the doubled effect deterministically.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import msgspec

from tillflow.engine import (
    BatchEffects,
    NewEvent,
    Processor,
    RecordedEvent,
    Runtime,
    Session,
    SqliteEventStore,
    format_id,
    id_from_key,
)

ACCOUNTS = 7
APPENDERS = 4
SIDECAR = "totals-sidecar"


def deposit_of(seq: int) -> tuple[str, NewEvent]:
    """The stream and event of deposit ``seq`` (the same every time it is appended)."""
    account = seq % ACCOUNTS
    amount = 1 + (seq * 7919) % 97
    event = NewEvent(
        type="Deposited",
        data={"account": account, "amount": amount, "seq": seq},
        id=id_from_key("deposit", str(seq)),
    )
    return f"account-{account}", event


def ledger(event: RecordedEvent, session: Session) -> None:
    deposit: dict[str, Any] = event.payload()
    account = str(deposit["account"])
    balance: int = session.get("balance", account) or 0
    session.put("balance", account, balance + deposit["amount"])
    session.emit(f"booking-{account}", "Booked", deposit)


def totals(event: RecordedEvent, session: Session) -> None:
    booked: dict[str, Any] = event.payload()
    row: dict[str, int] = session.get("totals", "all") or {"count": 0, "sum": 0}
    session.put("totals", "all", {"count": row["count"] + 1, "sum": row["sum"] + booked["amount"]})
    key = f"account-{booked['account']}"
    session.put("totals", key, (session.get("totals", key) or 0) + booked["amount"])


def audit(event: RecordedEvent, session: Session) -> None:
    key = format_id(event.id)
    session.put("audit", key, (session.get("audit", key) or 0) + 1)


def faulty_totals(self_kill_after: int | None) -> Processor:
    """``totals`` with its "all" row written outside the batch's transaction (a bug)."""
    side_writes = 0

    def handle(event: RecordedEvent, session: Session) -> None:
        nonlocal side_writes
        booked: dict[str, Any] = event.payload()
        row: dict[str, int] = session.get("totals", "all") or {"count": 0, "sum": 0}
        new_row = {"count": row["count"] + 1, "sum": row["sum"] + booked["amount"]}
        # The bug: committed now, in its own transaction, instead of with the checkpoint.
        session.store.commit_batch(
            SIDECAR, 0, 0, 0, BatchEffects(views={("totals", "all"): msgspec.json.encode(new_row)})
        )
        side_writes += 1
        if side_writes == self_kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        key = f"account-{booked['account']}"
        session.put("totals", key, (session.get("totals", key) or 0) + booked["amount"])

    return Processor("totals", handle, frozenset({"Booked"}), ("ledger",), batch_size=25)


def processors(faulty: bool, self_kill_after: int | None) -> list[Processor]:
    return [
        Processor("ledger", ledger, frozenset({"Deposited"}), batch_size=40),
        (
            faulty_totals(self_kill_after)
            if faulty
            else Processor("totals", totals, frozenset({"Booked"}), ("ledger",), batch_size=25)
        ),
        Processor("audit", audit, None, ("totals",), batch_size=60),
    ]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def append_all(runtime: Runtime, seqs: Iterator[int]) -> None:
    """One appender: take the next sequence number until none is left (shared iterator)."""
    for seq in seqs:
        stream, event = deposit_of(seq)
        receipt = await runtime.append(stream, [event])
        say(f"ack {seq} {receipt.positions[0]} {receipt.streams[stream]}")


async def main(arguments: argparse.Namespace) -> int:
    store = SqliteEventStore(arguments.db, durability="full")
    try:
        chain = processors(arguments.faulty, arguments.self_kill_after)
        async with Runtime(store, chain) as runtime:
            say("ready")
            seqs = iter(range(arguments.start, arguments.stop))
            async with asyncio.TaskGroup() as group:
                for _ in range(APPENDERS):
                    group.create_task(append_all(runtime, seqs))
            say("appended")
            if not arguments.finish:
                await asyncio.Event().wait()  # until the parent kills this process
            await runtime.drain(timeout=60)
            say("drained")
    finally:
        store.close()
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("db")
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--stop", type=int, required=True)
    parser.add_argument("--finish", action="store_true")
    parser.add_argument("--faulty", action="store_true")
    parser.add_argument("--self-kill-after", type=int, default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
