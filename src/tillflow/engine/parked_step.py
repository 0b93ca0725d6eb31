"""A piece of work run in a thread of its own that can stop at one point and wait there: how
the simulator pauses a worker in the middle of a batch (its handlers ran, its commit has not
happened yet) and wakes it later, with the step's own code and state untouched.

::

    simulator ── start() ─────────► thread: work() … park() ── waits ──┐
        ◄───────── parked (or done) ┘                                   │
    simulator ── resume() ──────────────────────────────────────────────┴─► … work() returns
        ◄───────── its result (or its exception)
    simulator ── abort() ─── park() raises SimulatedCrash: the work dies where it stood

Only one of the two threads runs at a time: every hand-over waits for the other side, so a
seeded run stays exactly replayable. A hand-over that takes longer than ``deadline`` seconds
raises ``RuntimeError`` (a hang, never an expected outcome).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from tillflow.engine.faults import SimulatedCrash

_State = Literal["new", "running", "parked", "resumed", "aborted", "done"]


class ParkedStep:
    """``work`` in its own thread; it stops at its first :meth:`park` call. Single use."""

    def __init__(self, work: Callable[[], str], name: str, deadline: float = 60.0) -> None:
        self._work = work
        self._deadline = deadline
        self._cond = threading.Condition()
        self._state: _State = "new"
        self._result = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def parked(self) -> bool:
        return self._state == "parked"

    def start(self) -> bool:
        """Run the work until it parks or ends; whether it parked. If it ended, its result
        or exception is what :meth:`resume` gives."""
        with self._cond:
            self._state = "running"
        self._thread.start()
        return self._wait_for("parked", "done") == "parked"

    def park(self) -> None:
        """Called by the work, in its thread: stop here until resumed (returns) or aborted
        (raises :class:`SimulatedCrash`). Only the first call parks; later ones return."""
        if threading.current_thread() is not self._thread:
            return
        with self._cond:
            if self._state != "running":
                return
            self._state = "parked"
            self._cond.notify_all()
        if self._wait_for("resumed", "aborted") == "aborted":
            raise SimulatedCrash

    def resume(self) -> str:
        """Let the work go on from where it parked (or collect it, if it ended without
        parking); its result, or its exception raised here."""
        self._hand_over("resumed")
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self) -> None:
        """The process died: a parked work raises :class:`SimulatedCrash` where it stood
        and ends (nothing after its park point runs); any other outcome is dropped."""
        self._hand_over("aborted")

    def _hand_over(self, state: _State) -> None:
        with self._cond:
            if self._state == "parked":
                self._state = state
                self._cond.notify_all()
        self._wait_for("done")
        self._thread.join(self._deadline)

    def _run(self) -> None:
        try:
            self._result = self._work()
        except SimulatedCrash as crash:
            if self._state != "aborted":
                self._error = crash
        except BaseException as error:
            self._error = error
        finally:
            with self._cond:
                self._state = "done"
                self._cond.notify_all()

    def _wait_for(self, *states: _State) -> _State:
        give_up = time.monotonic() + self._deadline
        with self._cond:
            while self._state not in states:
                left = give_up - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"{self._thread.name}: no hand-over in {self._deadline} s "
                        f"(state {self._state}, waiting for {' or '.join(states)})"
                    )
                self._cond.wait(left)
            return self._state
