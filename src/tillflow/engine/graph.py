"""The dependency graph of processors (``after=``), checked once at start-up."""

from __future__ import annotations

from collections.abc import Sequence

from tillflow.engine.errors import DependencyCycle, DuplicateProcessor, UnknownProcessor
from tillflow.engine.processor import Processor
from tillflow.engine.store import EventRegistry


def validate_graph(
    processors: Sequence[Processor], registry: EventRegistry | None = None
) -> list[str]:
    """Check the declarations and return the names in dependency order (upstream first).

    Raises :class:`DuplicateProcessor`, :class:`UnknownProcessor` (naming who referred to
    it), :class:`DependencyCycle` (naming the cycle) or, with a registry,
    :class:`UnknownEventType` for a subscription to a type nobody can record.
    """
    by_name: dict[str, Processor] = {}
    for declared in processors:
        if declared.name in by_name:
            raise DuplicateProcessor(declared.name)
        by_name[declared.name] = declared
    for declared in processors:
        for upstream in declared.after:
            if upstream not in by_name:
                raise UnknownProcessor(upstream, referenced_by=declared.name)
        if registry is not None and declared.types is not None:
            for event_type in sorted(declared.types):
                registry.check(event_type)

    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            start = path.index(name)
            raise DependencyCycle([*path[start:], name])
        state[name] = 1
        path.append(name)
        for upstream in by_name[name].after:
            visit(upstream)
        path.pop()
        state[name] = 2
        order.append(name)

    for declared in processors:
        visit(declared.name)
    return order
