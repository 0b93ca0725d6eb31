"""A step parked in its own thread: it stops where it parks, goes on when resumed, dies
there when aborted, and only one side runs at a time."""

from __future__ import annotations

import threading

import pytest

from tillflow.engine.faults import SimulatedCrash
from tillflow.engine.parked_step import ParkedStep


class Work:
    """Records what ran, in which thread; parks between "before" and "after"."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.threads: set[threading.Thread] = set()
        self.step: ParkedStep | None = None

    def __call__(self) -> str:
        self.threads.add(threading.current_thread())
        self.ran.append("before")
        assert self.step is not None
        self.step.park()
        self.ran.append("after")
        self.step.park()  # a second park goes straight on
        return "done"


def _parked() -> tuple[Work, ParkedStep]:
    work = Work()
    work.step = ParkedStep(work, "test")
    return work, work.step


def test_a_step_stops_where_it_parks_and_goes_on_when_resumed() -> None:
    work, step = _parked()
    assert step.start()
    assert step.parked
    assert work.ran == ["before"]
    assert step.resume() == "done"
    assert work.ran == ["before", "after"]
    assert threading.current_thread() not in work.threads


def test_an_aborted_step_dies_where_it_parked() -> None:
    work, step = _parked()
    assert step.start()
    step.abort()
    assert work.ran == ["before"]


def test_a_step_that_never_parks_gives_its_result_or_its_error() -> None:
    quick = ParkedStep(lambda: "quick", "quick")
    assert not quick.start()
    assert quick.resume() == "quick"

    def failing() -> str:
        raise ValueError("broken handler")

    broken = ParkedStep(failing, "broken")
    assert not broken.start()
    with pytest.raises(ValueError, match="broken handler"):
        broken.resume()


def test_park_outside_the_steps_thread_does_nothing() -> None:
    _, step = _parked()
    step.park()  # the caller's thread: returns at once
    assert step.start()
    step.park()
    assert step.resume() == "done"


def test_a_work_that_raises_a_crash_of_its_own_reports_it() -> None:
    def crashing() -> str:
        raise SimulatedCrash

    step = ParkedStep(crashing, "crash")
    assert not step.start()
    with pytest.raises(SimulatedCrash):
        step.resume()


def test_a_hand_over_that_never_comes_is_an_error_not_a_hang() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(10)
        return "late"

    step = ParkedStep(stuck, "stuck", deadline=0.2)
    with pytest.raises(RuntimeError, match="no hand-over"):
        step.start()
    release.set()
