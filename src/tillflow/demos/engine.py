"""The engine demo: writers append deposits while a chain of three processors runs.

::

    writers ──Deposited──► ledger (balances, emits Booked)
                              └─► totals (after ledger: sums Booked)
                                     └─► audit (after totals: checks every deposit's
                                                Booked exists — the barrier at work)

At the end the views are compared with the truth computed from the recorded deposits.
``tillflow engine-demo``; the smallest runnable use of the engine on its own (the shop demo,
:mod:`tillflow.demos.shop`, is ``tillflow demo``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from tillflow.engine import (
    EventRegistry,
    EventStore,
    NewEvent,
    Processor,
    ProcessorStatistics,
    RecordedEvent,
    Runtime,
    Session,
)

ACCOUNTS = 50
REGISTRY = EventRegistry(["Deposited", "Booked"])


def ledger(event: RecordedEvent, session: Session) -> None:
    data = event.payload()
    account = str(data["account"])
    balance = (session.get("balances", account) or 0) + data["amount"]
    session.put("balances", account, balance)
    session.emit(f"booking-{account}", "Booked", {"account": account, "amount": data["amount"]})


def totals(event: RecordedEvent, session: Session) -> None:
    row = session.get("totals", "all") or {"bookings": 0, "amount": 0}
    row["bookings"] += 1
    row["amount"] += event.payload()["amount"]
    session.put("totals", "all", row)


def audit_with(store: EventStore) -> Callable[[RecordedEvent, Session], None]:
    def audit(event: RecordedEvent, session: Session) -> None:
        if not store.find_by_causation(event.id):
            row = session.get("audit", "unbooked") or 0
            session.put("audit", "unbooked", row + 1)

    return audit


def processors(store: EventStore) -> list[Processor]:
    return [
        Processor("ledger", ledger, types=frozenset({"Deposited"}), batch_size=5000),
        Processor("totals", totals, types=frozenset({"Booked"}), after=("ledger",)),
        Processor("audit", audit_with(store), types=frozenset({"Deposited"}), after=("totals",)),
    ]


@dataclass
class Verdict:
    """The views against the truth recomputed from the log."""

    deposits: int
    matches: bool
    problems: list[str] = field(default_factory=list)


def verify(store: EventStore) -> Verdict:
    """Recompute balances and totals from the recorded ``Deposited`` events."""
    balances: Counter[str] = Counter()
    deposits = 0
    for lane in range(store.lane_count):
        for event in store.iter_all(lane):
            if event.type == "Deposited":
                data = event.payload()
                balances[str(data["account"])] += data["amount"]
                deposits += 1
    problems: list[str] = []
    for account, balance in balances.items():
        raw = store.read_view("balances", account)
        shown = None if raw is None else int(raw)
        if shown != balance:
            problems.append(f"account {account}: view says {shown}, truth is {balance}")
    raw_totals = store.read_view("totals", "all")
    shown_totals = msgspec.json.decode(raw_totals) if raw_totals else {"bookings": 0, "amount": 0}
    truth = {"bookings": deposits, "amount": sum(balances.values())}
    if shown_totals != truth:
        problems.append(f"totals: view says {shown_totals}, truth is {truth}")
    unbooked = store.read_view("audit", "unbooked")
    if unbooked is not None:
        problems.append(f"audit saw {int(unbooked)} deposits handled before they were booked")
    return Verdict(deposits, not problems, problems)


@dataclass(frozen=True)
class DemoSettings:
    duration: float = 10.0
    writers: int = 8
    rate: float = 2000.0  # deposits per second, all writers together
    seed: int = 1


async def run_demo(
    store: EventStore,
    settings: DemoSettings,
    on_tick: Callable[[float, int, list[ProcessorStatistics]], None] | None = None,
) -> Verdict:
    """Run writers for ``settings.duration`` seconds with the processors, drain, verify.
    ``on_tick(elapsed, appended, statistics)`` is called a few times a second."""
    appended = 0
    per_writer = settings.rate / max(settings.writers, 1)

    async def writer(number: int, stop_at: float) -> None:
        nonlocal appended
        rng = random.Random(settings.seed * 1000 + number)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while loop.time() < stop_at:
            account = rng.randrange(ACCOUNTS)
            amount = rng.randint(1, 500)
            await store.append_async(
                f"account-{account}",
                [NewEvent("Deposited", {"account": account, "amount": amount})],
            )
            appended += 1
            next_at += rng.expovariate(per_writer)
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async with Runtime(store, processors(store)) as runtime:
        started = time.monotonic()
        stop_at = asyncio.get_running_loop().time() + settings.duration
        writers = [asyncio.create_task(writer(n, stop_at)) for n in range(settings.writers)]
        while not all(task.done() for task in writers):
            if on_tick is not None:
                on_tick(time.monotonic() - started, appended, runtime.statistics())
            await asyncio.wait(writers, timeout=0.25)
        for task in writers:
            task.result()
        await runtime.drain(timeout=120)
        if on_tick is not None:
            on_tick(time.monotonic() - started, appended, runtime.statistics())
    return verify(store)
