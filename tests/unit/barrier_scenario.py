"""A scenario for the barrier property: ``up`` records an effect for each order; ``down``
handles an order only to find that effect (as the report joins a checkout to Inventory's
effects). Steps, appends and crashes interleave in an order chosen by the caller."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tillflow.engine import (
    EventStore,
    LaneProcessor,
    MemoryEventStore,
    NewEvent,
    Processor,
    RecordedEvent,
    Session,
)

ACTIONS = ("append", "step_up", "step_down", "crash")


@dataclass
class Outcome:
    violations: list[str] = field(default_factory=list)
    handled_down: int = 0


def run_scenario(
    actions: list[tuple[str, int]],
    lane_count: int = 1,
    barrier: bool = True,
    store: EventStore | None = None,
) -> Outcome:
    """Play ``actions`` — (name, argument) pairs — and report every order ``down`` handled
    before ``up`` had recorded its effect, or before ``up``'s checkpoint had passed it."""
    store = store or MemoryEventStore(lane_count=lane_count)
    outcome = Outcome()

    def up(event: RecordedEvent, session: Session) -> None:
        if event.type == "Order":
            session.emit(f"effect-{event.stream}", "Effect", {"order": event.position})

    def down(event: RecordedEvent, session: Session) -> None:
        if event.type != "Order":
            return
        outcome.handled_down += 1
        if not store.find_by_causation(event.id):
            outcome.violations.append(f"order at {event.lane}:{event.position} had no effect")
        if store.checkpoint("up", event.lane) < event.position:
            outcome.violations.append(f"up had not passed {event.lane}:{event.position}")

    up_declared = Processor("up", up, batch_size=3)
    down_declared = Processor("down", down, after=("up",) if barrier else (), batch_size=2)

    def fresh() -> list[list[LaneProcessor]]:
        return [
            [LaneProcessor(store, declared, lane) for lane in range(store.lane_count)]
            for declared in (up_declared, down_declared)
        ]

    up_lanes, down_lanes = fresh()
    orders = 0
    for action, argument in actions:
        if action == "append":
            for _ in range(argument % 4 + 1):
                store.append(f"order-{orders}", [NewEvent("Order", {"n": orders})])
                orders += 1
        elif action == "step_up":
            up_lanes[argument % store.lane_count].step()
        elif action == "step_down":
            down_lanes[argument % store.lane_count].step()
        else:  # crash: forget everything in memory, restart from durable state
            up_lanes, down_lanes = fresh()
    return outcome


def random_actions(seed: int, length: int = 60) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(rng.choice(ACTIONS), rng.randrange(1000)) for _ in range(length)]
