from __future__ import annotations

import pytest

from tillflow.engine import (
    DependencyCycle,
    DuplicateProcessor,
    EventRegistry,
    InvalidEvent,
    Processor,
    RecordedEvent,
    Session,
    UnknownEventType,
    UnknownProcessor,
    validate_graph,
)


def _ignore(event: RecordedEvent, session: Session) -> None:
    del event, session


def _p(name: str, *after: str, types: frozenset[str] | None = None) -> Processor:
    return Processor(name, _ignore, types=types, after=after)


def test_order_puts_upstream_first() -> None:
    order = validate_graph([_p("report", "inventory"), _p("inventory"), _p("audit", "report")])
    assert order.index("inventory") < order.index("report") < order.index("audit")


def test_unknown_name_in_after_names_both_sides() -> None:
    with pytest.raises(UnknownProcessor) as caught:
        validate_graph([_p("report", "inventry")])
    assert caught.value.name == "inventry"
    assert caught.value.referenced_by == "report"
    assert "inventry" in str(caught.value) and "report" in str(caught.value)


def test_cycle_is_named_in_order() -> None:
    with pytest.raises(DependencyCycle) as caught:
        validate_graph([_p("a", "c"), _p("b", "a"), _p("c", "b"), _p("d")])
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert "->" in str(caught.value)


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(DependencyCycle) as caught:
        validate_graph([_p("a", "a")])
    assert caught.value.cycle == ("a", "a")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(DuplicateProcessor):
        validate_graph([_p("a"), _p("a")])


def test_subscription_to_unregistered_type_is_refused() -> None:
    registry = EventRegistry(["CheckedOut"])
    validate_graph([_p("a", types=frozenset({"CheckedOut"}))], registry)
    with pytest.raises(UnknownEventType) as caught:
        validate_graph([_p("a", types=frozenset({"CheckedOut", "ChekedOut"}))], registry)
    assert caught.value.event_type == "ChekedOut"


@pytest.mark.parametrize(
    ("name", "after", "batch_size"),
    [("", (), 10), ("x" * 101, (), 10), ("ok", (), 0), ("bad\nname", (), 10)],
)
def test_malformed_declarations_are_refused(
    name: str, after: tuple[str, ...], batch_size: int
) -> None:
    with pytest.raises(InvalidEvent):
        Processor(name, _ignore, after=after, batch_size=batch_size)


def test_after_given_as_a_bare_string_is_refused() -> None:
    with pytest.raises(InvalidEvent):
        Processor("report", _ignore, after="inventory")  # type: ignore[arg-type]
